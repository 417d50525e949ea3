"""Distances from face size (pinhole camera) and the crowd state of monitor mode, with plain numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from maskgate.edge.analysis import Face
from maskgate.edge.config import Config, MonitorConfig
from maskgate.edge.crowd import (BOX_ASPECT, close_pairs, crowd_report, face_positions, face_width_px,
                                 focal_length_px, pairwise_distances, report_for)
from maskgate.edge.monitor import CrowdTracker

W, H = 640, 480


def face(cx: float, cy: float, width: float, masked: bool = True, aspect: float = 1.25) -> Face:
    """A face box of ``width`` px centred on (cx, cy)."""
    h = width * aspect
    box = (cx - width / 2, cy - h / 2, cx + width / 2, cy + h / 2)
    return Face(box, 0.9, 0.95 if masked else 0.05, "with_mask" if masked else "without_mask", masked)


def report(faces, min_distance=1.5, fov=62.2, face_cm=16.0, size=(W, H)):
    return crowd_report(faces, size, face_width_cm=face_cm, horizontal_fov_deg=fov, min_distance_m=min_distance)


def test_focal_length_from_the_field_of_view():
    assert focal_length_px(640, 90.0) == pytest.approx(320.0)
    assert focal_length_px(640, 62.2) == pytest.approx(320 / math.tan(math.radians(31.1)))
    assert focal_length_px(1280, 62.2) == pytest.approx(2 * focal_length_px(640, 62.2))
    with pytest.raises(ValueError):
        focal_length_px(640, 180)
    with pytest.raises(ValueError):
        focal_length_px(0, 60)


def test_a_face_in_the_middle_is_on_the_axis_at_the_distance_its_size_says():
    f = focal_length_px(W, 90.0)  # 320 px
    (x, y, z), = face_positions([face(W / 2, H / 2, 64).box], (W, H), face_width_cm=16, horizontal_fov_deg=90)
    assert (x, y) == pytest.approx((0.0, 0.0))
    assert z == pytest.approx(f * 0.16 / 64) == pytest.approx(0.8)
    # twice as small: twice as far; a wider face (configured) is farther for the same pixels
    (_, _, z2), = face_positions([face(W / 2, H / 2, 32).box], (W, H), face_width_cm=16, horizontal_fov_deg=90)
    (_, _, z3), = face_positions([face(W / 2, H / 2, 64).box], (W, H), face_width_cm=20, horizontal_fov_deg=90)
    assert z2 == pytest.approx(1.6) and z3 == pytest.approx(1.0)


def test_two_equal_faces_side_by_side_are_as_far_apart_as_the_pixels_say():
    # 80 px faces, centres 400 px apart: 400 px * 16 cm / 80 px = 0.8 m, whatever the lens
    for fov in (40.0, 62.2, 100.0):
        r = report([face(120, 240, 80), face(520, 240, 80)], fov=fov)
        assert r.pairs and r.pairs[0].distance_m == pytest.approx(0.8)
    # the same two people 160 px apart with 40 px faces (farther away): 160 * 16 / 40 = 0.64 m
    r = report([face(240, 240, 40), face(400, 240, 40)])
    assert r.pairs[0].distance_m == pytest.approx(0.64)


def test_a_near_and_a_far_face_with_the_same_pixel_gap_are_not_at_the_same_distance():
    near_pair = report([face(220, 240, 100), face(420, 240, 100)])  # 200 px apart, both near
    mixed = report([face(220, 240, 100), face(420, 240, 20)])  # 200 px apart, one far behind
    assert near_pair.pairs[0].distance_m == pytest.approx(0.32)
    assert not mixed.pairs  # a pixel threshold would call both pairs the same
    f = focal_length_px(W, 62.2)
    za, zb = f * 0.16 / 100, f * 0.16 / 20
    xa, xb = (220 - 320) * za / f, (420 - 320) * zb / f
    expected = math.hypot(xb - xa, zb - za)
    d = pairwise_distances(face_positions([mixed_f.box for mixed_f in (face(220, 240, 100), face(420, 240, 20))],
                                          (W, H), face_width_cm=16, horizontal_fov_deg=62.2))
    assert d[0, 1] == pytest.approx(expected) and d[0, 1] > 3.0
    assert d[0, 0] == 0 and d[0, 1] == d[1, 0]


def test_vertical_offsets_count_too():
    # one above the other, 300 px apart, 100 px faces: 0.48 m
    r = report([face(320, 90, 100), face(320, 390, 100)])
    assert r.pairs[0].distance_m == pytest.approx(0.48)


def test_a_box_cut_by_the_left_or_right_border_is_sized_from_its_height():
    assert face_width_px((100, 50, 180, 150), W) == 80
    assert face_width_px((0, 50, 30, 150), W) == pytest.approx(BOX_ASPECT * 100)  # cut: only 30 px wide
    assert face_width_px((W - 30, 50, W, 150), W) == pytest.approx(BOX_ASPECT * 100)
    assert face_width_px((0, 50, 120, 150), W) == 120  # wider than its height says: kept


def test_pairs_are_those_below_the_threshold_closest_first():
    faces = [face(100, 240, 80), face(300, 240, 80), face(560, 240, 80)]  # 0.4 m, 0.52 m, 0.92 m apart
    r = report(faces, min_distance=0.6)
    assert [(p.a, p.b) for p in r.pairs] == [(0, 1), (1, 2)]
    assert [p.distance_m for p in r.pairs] == pytest.approx([0.4, 0.52])
    assert r.violations == 2 and r.too_close == {0, 1, 2} and r.closest_m == pytest.approx(0.4)
    assert report(faces, min_distance=0.3).violations == 0
    assert report(faces, min_distance=1.0).violations == 3
    assert close_pairs(np.zeros((0, 3)), 1.0) == ()


def test_counts_share_and_summary():
    faces = [face(100, 240, 80, True), face(300, 240, 80, False), face(560, 240, 80, True), face(320, 60, 10, True)]
    r = report(faces, min_distance=0.6)
    assert (r.people, r.masked, r.unmasked) == (4, 3, 1)
    assert r.masked_share == pytest.approx(0.75)
    assert r.summary() == "4 people, 3 masked (75%), 2 pairs closer than 0.6 m (3 people)"
    j = r.to_json()
    assert j["people"] == 4 and j["masked_share"] == 0.75 and j["violations"] == 2 and len(j["pairs"]) == 2
    empty = report([])
    assert empty.people == 0 and empty.masked_share is None and empty.violations == 0
    assert empty.summary() == "nobody"
    one = report([face(320, 240, 80, False)])
    assert one.summary() == "1 person, 0 masked (0%), 0 pairs closer than 1.5 m"


def test_report_for_takes_the_monitor_section():
    faces = [face(120, 240, 80), face(520, 240, 80)]  # 0.8 m apart
    cfg = Config().replace(monitor={"min_distance_m": 0.7})
    assert report_for(faces, (W, H), cfg.monitor).violations == 0
    assert report_for(faces, (W, H), cfg.monitor, min_distance_m=1.0).violations == 1
    assert report_for(faces, (W, H), MonitorConfig()).min_distance_m == 1.5


# -- the crowd state over frames ------------------------------------------------------------------- #


def crowd(people: int, masked: int = 0, close: bool = False):
    """A report with ``people`` faces, the first ``masked`` masked, the first two close together if ``close``."""
    xs = [60, 160 if close else 260, 360 if close else 460][:people]  # 20 px faces: 100 px = 0.8 m, 200 px = 1.6 m
    return report([face(x, 240, 20, i < masked) for i, x in enumerate(xs)], min_distance=1.5)


def test_tracker_ignores_a_one_frame_miss_and_rate_limits_events():
    t = CrowdTracker(window=3, event_seconds=5.0)
    assert crowd(2, 1, close=True).violations == 1 and crowd(2, 1).violations == 0
    assert t.update(0.0, crowd(0)) is None  # an empty hall records nothing
    assert t.update(0.1, crowd(2, 1)) is None  # median of (0, 0, 2): still nobody
    first = t.update(0.2, crowd(2, 1))  # median of (0, 2, 2)
    assert first is not None and (first.people, first.masked, first.violations) == (2, 1, 0)
    assert t.update(0.3, crowd(1, 1)) is None  # one frame missed a face: the median is still 2
    assert t.update(0.4, crowd(2, 1)) is None
    # a real change inside the interval is held back, then recorded when the interval ends
    for k in range(5):
        assert t.update(0.5 + 0.1 * k, crowd(3, 3, close=True)) is None
    later = t.update(5.3, crowd(3, 3, close=True))
    assert later is not None and (later.people, later.masked, later.violations) == (3, 3, 1)
    assert later.describe(1.5) == "3 people, 3 masked (100%), 1 pair closer than 1.5 m"
    assert t.update(6.0, crowd(3, 3, close=True)) is None  # unchanged: nothing
    # everybody leaves: recorded once the interval has passed
    for k in range(3):
        t.update(7.0 + k, crowd(0))
    assert t.update(10.5, crowd(0)) is not None and t.state.people == 0
    assert t.state.describe(1.5) == "nobody"


# -- tiles: geometry and merging ------------------------------------------------------------------- #


def test_tiles_cover_the_frame_and_overlap():
    from maskgate.edge.tiles import tile_origins

    assert tile_origins(400, 1, 0.25) == [(0, 400)]
    for length, grid in ((400, 2), (301, 3), (640, 4)):
        tiles = tile_origins(length, grid, 0.25)
        assert len(tiles) == grid and tiles[0][0] == 0 and tiles[-1][1] == length
        for (a0, a1), (b0, b1) in zip(tiles, tiles[1:]):
            assert b0 < a1  # neighbours overlap
            assert (a1 - b0) == pytest.approx(0.25 * (a1 - a0), abs=1.5)


def test_merging_keeps_the_best_of_overlapping_and_nested_boxes():
    from maskgate.edge.tiles import merge_boxes

    boxes = np.array([[10, 10, 50, 60], [12, 11, 52, 61],  # the same face twice
                      [20, 30, 40, 55],  # a part of it (the mask), lower score
                      [200, 10, 240, 60]], np.float32)  # another face
    scores = np.array([0.6, 0.9, 0.4, 0.5], np.float32)
    b, s = merge_boxes(boxes, scores, iou_threshold=0.45)
    assert s.tolist() == pytest.approx([0.9, 0.5])
    assert b.tolist() == [[12, 11, 52, 61], [200, 10, 240, 60]]
    b, s = merge_boxes(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.45)
    assert b.shape == (0, 4) and s.shape == (0,)
