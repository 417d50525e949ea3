"""Face-free doorway frames: stable per photo, without the audited unannotated faces."""

from __future__ import annotations

import numpy as np

from maskgate import datasets
from maskgate.facefree import UNANNOTATED_FACES, face_free_frames


def test_a_scene_subset_gets_the_same_regions_as_the_whole_set(shared):
    scenes = {i.scene for i in datasets.read_voc(shared / "data" / "wild")}
    some = set(sorted(scenes)[::37])
    full = {n: f for n, f in face_free_frames(shared, drawn=0)}
    part = {n: f for n, f in face_free_frames(shared, scenes=some, drawn=0)}
    assert part and set(part) < set(full)
    assert {n.split("_region")[0] for n in part} <= some
    for name, frame in part.items():
        assert np.array_equal(frame, full[name]), name


def test_regions_holding_unannotated_faces_are_left_out(shared):
    names = [n for n, _ in face_free_frames(shared, drawn=2)]
    assert not UNANNOTATED_FACES & set(names)
    assert len(names) == len(set(names)) > 400
    assert names[-2:] == ["empty_doorway_00", "empty_doorway_01"]
