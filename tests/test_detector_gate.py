"""A detector judged at the gate with the committed classifier held fixed (maskgate detector compare --gate)."""

from __future__ import annotations

import json
import shutil

import pytest

from maskgate.convert.classifier import CLASSIFIER_NAME
from maskgate.convert.detector import door_detector
from maskgate.convert.detector_gate import format_judgements, judge_at_gate
from maskgate.errors import DataError
from maskgate.models import ARTIFACT_DIR


def test_the_committed_detector_gets_back_the_committed_pair_and_figures(shared):
    """The judge is the gate-level rule ``maskgate convert`` ran: on the committed files it must agree with the manifest."""
    man = json.loads((ARTIFACT_DIR / "manifest.json").read_text())
    clf = man["artifacts"][CLASSIFIER_NAME]
    door = door_detector(ARTIFACT_DIR)
    r = judge_at_gate(shared, door, ARTIFACT_DIR)
    assert (r["score"], r["p_mask"]) == (man["artifacts"][door.name]["thresholds"]["score"], clf["thresholds"]["p_mask"])
    recorded = clf["metrics"]["gate_encounters"]["int8"]
    for split in ("all", "held_out_scenes"):
        for key in ("false_rejects", "false_accepts", "must_unlock", "must_lock"):
            assert r["encounters"][split][key] == recorded["encounters"][split][key], (split, key)
    assert r["face_free"]["unlocked"] == recorded["face_free"]["unlocked"] == 0
    table = format_judgements({door.name: r})
    assert f"| {door.name} | {r['score']}, {r['p_mask']} | {recorded['encounters']['all']['false_rejects']} of 476 |" in table


def test_a_models_folder_without_the_classifiers_thresholds_is_named(shared, tmp_path):
    shutil.copy(ARTIFACT_DIR / CLASSIFIER_NAME, tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 1, "artifacts": {}}))
    with pytest.raises(DataError, match=f"no crop-level threshold for {CLASSIFIER_NAME}"):
        judge_at_gate(shared, door_detector(ARTIFACT_DIR), tmp_path)


def test_compare_gate_prints_and_writes_the_judgement(shared, tmp_path, capsys):
    from maskgate.cli import main

    door = door_detector(ARTIFACT_DIR)
    out = tmp_path / "compare.json"
    assert main(["detector", "compare", "--limit", "2", "--gate", "--json", str(out), "--shared", str(shared)]) == 0
    printed = capsys.readouterr().out
    assert "At the gate, the committed classifier held fixed" in printed
    gate = json.loads(out.read_text())["gate"]
    assert list(gate) == [door.name]
    man = json.loads((ARTIFACT_DIR / "manifest.json").read_text())
    assert gate[door.name]["p_mask"] == man["artifacts"][CLASSIFIER_NAME]["thresholds"]["p_mask"]


def test_compare_keeps_two_detectors_of_the_same_file_name(shared, tmp_path):
    """Every converted run holds a face_detector_ft_...tflite: side by side, neither may replace the other."""
    from maskgate.cli import main

    ft = ARTIFACT_DIR / "face_detector_ft_224x168_int8.tflite"
    other = tmp_path / "run" / ft.name
    other.parent.mkdir()
    shutil.copy(ft, other)
    shutil.copy(ARTIFACT_DIR / "manifest.json", other.parent)
    out = tmp_path / "compare.json"
    assert main(["detector", "compare", "--limit", "2", "--json", str(out), "--shared", str(shared), str(ft), str(other)]) == 0
    result = json.loads(out.read_text())
    names = list(result["detectors"])
    assert len(names) == 4 and ft.name in names and str(other) in names, names
    assert result["encounters"] == 2 and result["encounters_cv2_dnn_boxes_past_the_edge"] >= 0
