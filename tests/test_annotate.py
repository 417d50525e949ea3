"""`maskgate annotate`: labelled pictures of real photos, a summary that matches the analyzer, and the drawing."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from maskgate.cli import main
from maskgate.edge.analysis import Face
from maskgate.edge.config import Config
from maskgate.edge.crowd import crowd_report
from maskgate.edge.draw import MASKED, TOO_CLOSE, UNMASKED, draw_crowd, face_label, layout, lines_to_draw

#: a street scene with two people, a dense crowd, a single face, a portrait-format photo
PHOTOS = ("scene_0000.jpg", "scene_0260.jpg", "scene_0002.jpg", "scene_0010.jpg")


@pytest.fixture(scope="module")
def annotated(shared, tmp_path_factory):
    wild = shared / "data" / "wild" / "images"
    out = tmp_path_factory.mktemp("annotated")
    rc = main(["annotate", *(str(wild / p) for p in PHOTOS), "--out", str(out)])
    return rc, wild, out, json.loads((out / "summary.json").read_text())


def test_annotate_writes_one_labelled_picture_per_photo_of_the_right_size(annotated):
    rc, wild, out, summary = annotated
    assert rc == 0 and summary["errors"] == []
    assert [p["image"] for p in summary["pictures"]] == [str(wild / p) for p in PHOTOS]
    for name, entry in zip(PHOTOS, summary["pictures"]):
        src = cv2.imread(str(wild / name))
        pic = cv2.imread(entry["output"])
        assert entry["output"] == str(out / name)
        h, w = src.shape[:2]
        lay = layout(w, h)
        assert (entry["width"], entry["height"]) == (w, h)
        assert pic.shape == (lay.height, lay.width, 3) == (entry["output_height"], entry["output_width"], 3)
        assert max(pic.shape[:2]) >= 1280  # small photos are enlarged: labels stay readable
        # the photo is there, enlarged, under the header
        body = cv2.resize(pic[lay.header:], (w, h), interpolation=cv2.INTER_AREA)
        assert np.median(np.abs(body.astype(int) - src.astype(int))) < 12


def test_the_summary_counts_are_the_analyzers(annotated):
    from maskgate.edge.monitor import analyse_crowd, build_monitor_analyzer

    _, wild, _, summary = annotated
    cfg = Config()
    analyzer = build_monitor_analyzer(cfg)
    assert summary["settings"]["min_face"] == cfg.monitor.min_face == analyzer.min_face
    people = 0
    for name, entry in zip(PHOTOS, summary["pictures"]):
        result, report = analyse_crowd(analyzer, cv2.imread(str(wild / name)), cfg)
        assert [f["box"] for f in entry["faces"]] == [list(f.box) for f in result.faces]
        assert [f["label"] for f in entry["faces"]] == [f.label for f in result.faces]
        assert (entry["people"], entry["masked"], entry["violations"]) == (report.people, report.masked, report.violations)
        assert entry["unmasked"] == entry["people"] - entry["masked"]
        assert all(len(f["position_m"]) == 3 and f["position_m"][2] > 0 for f in entry["faces"])
        assert all(p["distance_m"] <= cfg.monitor.min_distance_m for p in entry["pairs"])  # rounded to cm
        people += entry["people"]
    crowd = summary["pictures"][1]  # the dense crowd: many small faces, found thanks to tiles and monitor.min_face
    assert crowd["people"] >= 15 and min(f["box"][2] - f["box"][0] for f in crowd["faces"]) < cfg.detection.min_face
    assert crowd["violations"] > 0
    assert summary["pictures"][0]["people"] >= 2


def test_a_folder_is_annotated_and_bad_pictures_are_reported_on_one_line(shared, tmp_path, capsys):
    wild = shared / "data" / "wild"
    good = tmp_path / "in"
    good.mkdir()
    (good / "a.jpg").symlink_to(wild / "images" / "scene_0002.jpg")
    (good / "b.jpg").write_bytes(b"not a jpeg")
    (good / "notes.txt").write_text("not a picture")
    out = tmp_path / "out"
    rc = main(["annotate", str(good), str(tmp_path / "missing.jpg"), "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{good / 'b.jpg'}: error: {good / 'b.jpg'} is not a readable image" in err
    assert any(line.startswith(f"{tmp_path / 'missing.jpg'}: error: image not found") for line in err)
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["pictures"]) == 1 and len(summary["errors"]) == 2
    # a VOC folder is read from its images/; --limit takes the first N
    rc = main(["annotate", str(wild), "--out", str(tmp_path / "voc"), "--limit", "2", "--min-size", "0"])
    assert rc == 0
    pics = json.loads((tmp_path / "voc" / "summary.json").read_text())["pictures"]
    assert [p["image"] for p in pics] == [str(p) for p in sorted((wild / "images").glob("*.jpg"))[:2]]
    assert all(p["output_width"] == p["width"] for p in pics)  # --min-size 0 keeps the size


def test_annotate_refuses_to_write_among_its_inputs_and_names_bad_options(shared, tmp_path):
    wild = shared / "data" / "wild" / "images"
    r = subprocess.run([sys.executable, "-m", "maskgate", "annotate", str(wild / "scene_0002.jpg"), "--out", str(wild)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"maskgate: error: --out {wild} holds input pictures: choose another folder"]
    r = subprocess.run([sys.executable, "-m", "maskgate", "annotate", str(wild / "scene_0002.jpg"), "--out",
                        str(tmp_path), "--min-distance", "50"], capture_output=True, text=True)
    assert r.returncode == 1 and "monitor.min_distance_m" in r.stderr and "Traceback" not in r.stderr


# -- the drawing, on generated pictures ------------------------------------------------------------ #


def fake_face(x, y, w, p_mask):
    return Face((x, y, x + w, y + int(w * 1.25)), 0.9, p_mask, "with_mask" if p_mask >= 0.5 else "without_mask",
                p_mask >= 0.5)


def colour_near(img, colour, tol=30) -> np.ndarray:
    return (np.abs(img.astype(int) - np.array(colour)).max(axis=-1) <= tol)


def test_labels_say_the_call_and_its_confidence():
    assert face_label(fake_face(0, 0, 10, 0.97)) == "mask 97%"
    assert face_label(fake_face(0, 0, 10, 0.12)) == "no mask 88%"


def test_drawing_boxes_lines_header_and_legend():
    img = np.full((300, 400, 3), 128, np.uint8)  # grey: none of the palette's colours
    faces = [fake_face(60, 120, 40, 0.95), fake_face(140, 120, 40, 0.05), fake_face(330, 40, 12, 0.9)]
    rep = crowd_report(faces, (400, 300), face_width_cm=16, horizontal_fov_deg=62.2, min_distance_m=1.5)
    assert [(p.a, p.b) for p in rep.pairs] == [(0, 1)]  # 80 px apart with 40 px faces: 0.32 m
    pic = draw_crowd(img, faces, rep, note="test.jpg")
    lay = layout(400, 300)
    assert pic.shape == (lay.height, lay.width, 3) and lay.scale == pytest.approx(3.2)
    body, header = pic[lay.header:], pic[: lay.header]
    s = lay.scale

    def outline(f, colour):
        x1, y1, x2, y2 = (int(round(v * s)) for v in f.box)
        edge = np.concatenate([body[y1:y2, x1 - 1:x1 + 2].reshape(-1, 3), body[y1:y2, x2 - 1:x2 + 2].reshape(-1, 3)])
        return colour_near(edge[None], colour).mean()

    assert outline(faces[0], MASKED) > 0.3 and outline(faces[0], UNMASKED) == 0
    assert outline(faces[1], UNMASKED) > 0.3 and outline(faces[1], MASKED) == 0
    # the pair: dashes of yellow between the two faces, at the height of their centres
    cy = int(round(145 * s))
    between = body[cy - 3:cy + 4, int(round(100 * s)) + 5:int(round(140 * s)) - 5]
    assert colour_near(between, TOO_CLOSE).any()
    # the header holds the summary and the legend's swatches, and is not drawn over the photo
    assert colour_near(header, MASKED).any() and colour_near(header, UNMASKED).any() and colour_near(header, TOO_CLOSE).any()
    assert np.median(body[-20:, :50]) == 128


def test_a_tight_group_gets_one_line_per_person_not_a_web():
    faces = [fake_face(20 + 45 * i, 100, 40, 0.9) for i in range(6)]  # six in a row, shoulder to shoulder
    rep = crowd_report(faces, (400, 300), face_width_cm=16, horizontal_fov_deg=62.2, min_distance_m=1.5)
    assert rep.violations == 15
    shown = lines_to_draw(rep)
    assert len(shown) < rep.violations
    assert {i for p in shown for i in (p.a, p.b)} == set(range(6))


def test_large_pictures_keep_their_size():
    lay = layout(1920, 1080)
    assert lay.scale == 1.0 and lay.width == 1920 and lay.height == 1080 + lay.header
    assert layout(400, 300, min_long_side=0).width == 400


def test_tiles_find_the_small_faces_of_a_crowd(shared):
    from maskgate.edge.detector import FaceDetector
    from maskgate.edge.runtime import load_model
    from maskgate.edge.tiles import TiledDetector
    from maskgate.models import ARTIFACT_DIR

    img = cv2.imread(str(shared / "data" / "wild" / "images" / "scene_0260.jpg"))  # ~50 people, faces ~15-40 px
    det = FaceDetector(load_model(ARTIFACT_DIR / "face_detector_300x300_int8.tflite"), score_threshold=0.3)
    whole, _ = TiledDetector(det, 1).detect(img)
    tiled, scores = TiledDetector(det, 2).detect(img)
    assert len(tiled) >= 2 * max(len(whole), 5)
    h, w = img.shape[:2]
    assert (tiled[:, 0] >= 0).all() and (tiled[:, 2] <= w).all() and (tiled[:, 3] <= h).all()
    assert (scores >= 0.3).all()
    # no face is reported twice: merged boxes hardly overlap
    from maskgate.edge.ssd import iou_one_to_many

    assert all(iou_one_to_many(b, np.delete(tiled, i, axis=0)).max() <= 0.45 for i, b in enumerate(tiled))
