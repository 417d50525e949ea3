"""The threshold sweep: unlock points agree with the gate's own per-frame verdict, and `maskgate eval --sweep`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskgate.cli import main
from maskgate.edge.analysis import Candidate, select_faces
from maskgate.edge.config import Config
from maskgate.edge.model_files import build_analyzer
from maskgate.edge.policy import frame_passes
from maskgate.sweep import Record, Sweep, unlock_point


@pytest.fixture(scope="module")
def analyzer():
    return build_analyzer(Config())


def _candidate(rng: np.random.Generator) -> Candidate:
    x, y, w = (int(v) for v in rng.integers(0, 400, 3))
    probs = rng.dirichlet([1.0, 1.0, 1.0]).astype(np.float32)
    return Candidate((x, y, x + 40 + w, y + 40 + w), float(rng.uniform(0.05, 1.0)), probs)


def _records(rng: np.random.Generator, n: int = 300) -> list[Record]:
    return [Record(f"f{i}", "with_mask" if rng.random() < 0.6 else "without_mask", "",
                   [_candidate(rng) for _ in range(int(rng.integers(0, 4)))]) for i in range(n)]


def test_sweep_counts_match_the_gate_verdict_at_every_threshold_pair(analyzer):
    rng = np.random.default_rng(3)
    records = _records(rng)
    scores = (0.05, 0.1, 0.3, 0.5)
    sweep = Sweep(records, analyzer, scores)
    clf = analyzer.classifier
    for score in scores:
        for p in (0.0, 0.2, 0.5, 0.8809, 0.97):
            fa = fr = 0
            for r in records:
                faces, _ = select_faces(r.candidates, mask_index=clf.mask_index, not_face_index=clf.not_face_index,
                                        mask_threshold=p, other_face_score=analyzer.other_face_score, min_score=score)
                opened = frame_passes(faces, 1)[0]
                fa += opened and not r.must_unlock
                fr += r.must_unlock and not opened
            c = sweep.counts(score, p)
            assert (c["false_accepts"], c["false_rejects"]) == (fa, fr), (score, p)


def test_the_unlock_point_is_the_least_sure_face_and_none_without_a_door_face(analyzer):
    clf = analyzer.classifier
    kw = dict(mask_index=clf.mask_index, not_face_index=clf.not_face_index, other_face_score=0.5)

    def cand(box, score, p_mask, p_not_face=0.0):
        probs = np.zeros(3, np.float32)
        probs[clf.labels.index("without_mask")] = 1.0 - p_mask - p_not_face
        probs[clf.mask_index], probs[clf.not_face_index] = p_mask, p_not_face
        return Candidate(box, score, probs)

    one = [cand((100, 100, 300, 300), 0.3, 0.9)]
    assert unlock_point(one, score=0.1, **kw) == pytest.approx(0.9)
    assert unlock_point(one, score=0.4, **kw) is None  # below the detector threshold: no face at the door
    assert unlock_point([], score=0.1, **kw) is None
    # a weakly detected face beside a confident one is not a person: the confident one decides
    assert unlock_point(one + [cand((400, 100, 560, 260), 0.8, 0.7)], score=0.1, **kw) == pytest.approx(0.7)
    # two confident faces are two people: with max_people 2 both must be masked
    two = [cand((100, 100, 300, 300), 0.6, 0.9), cand((400, 100, 560, 260), 0.8, 0.7)]
    assert unlock_point(two, score=0.1, max_people=1, **kw) is None
    assert unlock_point(two, score=0.1, max_people=2, **kw) == pytest.approx(0.7)
    # what the classifier calls "not a face" is no face at all
    assert unlock_point([cand((100, 100, 300, 300), 0.3, 0.3, 0.6)], score=0.1, **kw) is None


def test_the_bound_is_the_hardest_must_lock_frame(analyzer):
    rng = np.random.default_rng(5)
    records = _records(rng)
    sweep = Sweep(records, analyzer, (0.1,))
    bound = sweep.must_lock_bound(0.1)
    assert bound is not None
    assert sweep.counts(0.1, bound)["false_accepts"] >= 1
    assert sweep.counts(0.1, float(np.nextafter(np.float32(bound), np.float32(2.0))))["false_accepts"] == 0
    assert sweep.hardest_must_lock(0.1, 1)[0][0] == bound


def test_masked_records_no_threshold_lets_in_are_counted_over_a_subset(analyzer):
    rng = np.random.default_rng(7)
    records = _records(rng)
    sweep = Sweep(records, analyzer, (0.1,))
    never = sweep.never_unlock(0.1)
    refused_at_any_p = [r for i, r in enumerate(records) if sweep.counts(0.1, 0.0, [i])["false_rejects"] == 1]
    assert never and never == refused_at_any_p
    first_half = range(len(records) // 2)
    assert sweep.never_unlock(0.1, first_half) == [r for r in never if records.index(r) in first_half]


def test_eval_sweep_agrees_with_the_gate_report_at_the_door_thresholds(shared, tmp_path, capsys):
    enc = shared / "data" / "encounters"
    labels = json.loads((enc / "labels.json").read_text())
    names = [n for n, v in sorted(labels.items()) if v["label"] == "with_mask"][:6] + \
        [n for n, v in sorted(labels.items()) if v["label"] != "with_mask"][:4]
    folder = tmp_path / "frames"
    folder.mkdir()
    for n in names:
        (folder / n).symlink_to(enc / n)
    (folder / "labels.json").write_text(json.dumps({n: labels[n] for n in names}))
    out = tmp_path / "report.json"
    assert main(["eval", "--data", str(folder), "--models", "int8", "--sweep", "--json", str(out)]) == 0
    r = json.loads(out.read_text())["models"]["int8"]
    sweep, gate = r["sweep"], r["gate"]["all"]
    door = next(row["all"] for row in sweep["table"] if row["p_mask"] == sweep["door"]["p_mask"])
    assert (door["false_accepts"], door["false_rejects"]) == (gate["false_accepts"], gate["false_rejects"])
    rejects = [row["all"]["false_rejects"] for row in sweep["table"]]
    assert rejects == sorted(rejects)  # a stricter p_mask never lets more masked frames in
    assert sorted(sweep["unlock_points"]) == sorted(names)
    assert {b["score"] for b in sweep["bounds"]} >= {0.05, 0.1, 0.5}
    assert "threshold sweep" in capsys.readouterr().out
