"""Measuring the gate: false accepts and false rejects per frame, detection and classification.

The protocol is the one ``../shared/data/encounters`` was made with, and the one the product is
judged by: each frame shows one person at a doorway; ``with_mask`` must unlock, ``without_mask`` and
``mask_weared_incorrect`` must not, and a frame with no face (``no_face``) must not either.  The
verdict of a frame is the default policy's single-frame verdict (:func:`maskgate.edge.policy.frame_passes`
on the faces at the door), exactly what ``maskgate detect`` prints.

A false accept — a frame that must stay locked but would unlock — is the worst error a mask gate
can make; a false reject is a masked person kept waiting.

Frames made from the scenes held out of training (``maskgate.models.classifier_data.in_validation``)
are reported separately: those numbers were not seen by the classifier's training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from maskgate import datasets
from maskgate.edge.analysis import FrameAnalyzer
from maskgate.edge.policy import frame_passes
from maskgate.edge.ssd import iou_one_to_many

MUST_UNLOCK = "with_mask"


@dataclass
class FrameOutcome:
    name: str
    label: str
    source: str
    unlocked: bool
    faces: int
    p_mask: float | None  # of the person at the door


def gate_outcomes(analyzer: FrameAnalyzer, frames: Iterable[tuple[str, str, str, np.ndarray]],
                  max_people: int = 1) -> list[FrameOutcome]:
    """Run the gate's per-frame path on ``(name, label, source, image)`` items."""
    out = []
    for name, label, source, image in frames:
        result = analyzer.analyse(image)
        ok = frame_passes(result.faces, max_people)[0]
        out.append(FrameOutcome(name, label, source, ok, len(result.faces),
                                result.faces[0].p_mask if result.faces else None))
    return out


def rates(outcomes: list[FrameOutcome]) -> dict:
    must_unlock = [o for o in outcomes if o.label == MUST_UNLOCK]
    must_lock = [o for o in outcomes if o.label != MUST_UNLOCK]
    fa = sum(o.unlocked for o in must_lock)
    fr = sum(not o.unlocked for o in must_unlock)
    by_label = {}
    for label in sorted({o.label for o in outcomes}):
        sel = [o for o in outcomes if o.label == label]
        by_label[label] = {"frames": len(sel), "unlocked": sum(o.unlocked for o in sel),
                           "no_face_found": sum(o.faces == 0 for o in sel)}
    return {
        "frames": len(outcomes),
        "must_lock": len(must_lock), "false_accepts": fa,
        "false_accept_rate": round(fa / len(must_lock), 4) if must_lock else None,
        "must_unlock": len(must_unlock), "false_rejects": fr,
        "false_reject_rate": round(fr / len(must_unlock), 4) if must_unlock else None,
        "by_label": by_label,
        "false_accept_frames": [o.name for o in must_lock if o.unlocked][:50],
    }


def frames_from_folder(folder: Path, *, transform=None):
    for f in datasets.read_frames(folder):
        img = cv2.imread(str(f.path))
        if img is None:
            continue
        yield f.path.name, f.label, f.source, img if transform is None else transform(img)


def frames_from_voc(folder: Path, *, min_face: int = 28, transform=None):
    """The encounters protocol applied to a VOC folder: one doorway frame per annotated face."""
    from maskgate.models.framing import doorway_frame

    for item in datasets.read_voc(folder):
        img = cv2.imread(str(item.path))
        for i, obj in enumerate(item.objects):
            if min(obj.width, obj.height) < min_face:
                continue
            frame, _ = doorway_frame(img, obj.box)
            yield f"{item.scene}_face{i}", obj.label, item.scene, frame if transform is None else transform(frame)


def evaluate_gate(analyzer: FrameAnalyzer, frames, *, max_people: int = 1) -> dict:
    """Gate rates on all frames and on the frames of scenes held out of training."""
    from maskgate.models.classifier_data import in_validation

    outcomes = gate_outcomes(analyzer, frames, max_people)
    held_out = [o for o in outcomes if o.source and in_validation(f"wild:{o.source}")]
    report = {"all": rates(outcomes)}
    if held_out and len(held_out) < len(outcomes):
        report["held_out_scenes"] = rates(held_out)
    return report


def detection_metrics(analyzer: FrameAnalyzer, images: list[datasets.VocImage], *, min_iou: float = 0.5) -> dict:
    """Recall by class and size, and precision, of the gate's detector on VOC photos (no size filter)."""
    buckets = [(0, 32), (32, 64), (64, 128), (128, 100000)]
    found = {}
    total = {}
    det_total = det_matched = 0
    det = analyzer.detector
    for item in images:
        img = cv2.imread(str(item.path))
        boxes, _ = det.detect(img)
        gts = np.array([o.box for o in item.objects], np.float32).reshape(-1, 4)
        det_total += len(boxes)
        if len(boxes) and len(gts):
            det_matched += int(sum(iou_one_to_many(b, gts).max() >= min_iou for b in boxes))
        for o in item.objects:
            s = min(o.width, o.height)
            b = next(f"{lo}-{hi}px" if hi < 100000 else f">={lo}px" for lo, hi in buckets if lo <= s < hi)
            for key in (o.label, b):
                total[key] = total.get(key, 0) + 1
                hit = len(boxes) and iou_one_to_many(np.array(o.box, np.float32), boxes).max() >= min_iou
                found[key] = found.get(key, 0) + int(bool(hit))
    return {
        "recall": {k: {"faces": total[k], "found": found[k], "recall": round(found[k] / total[k], 4)} for k in total},
        "detections": det_total,
        "precision": round(det_matched / det_total, 4) if det_total else None,
        "note": "precision is a lower bound: some faces in the photos are not annotated",
        "score_threshold": det.score_threshold,
    }


def classifier_metrics(analyzer: FrameAnalyzer, images: list[datasets.VocImage], *, min_face: int = 16) -> dict:
    """The classifier alone on ground-truth face boxes: how each true label is called."""
    from maskgate.models.classifier_data import in_validation

    clf = analyzer.classifier
    table: dict[str, dict[str, dict[str, int]]] = {"all": {}, "held_out_scenes": {}}
    for item in images:
        img = cv2.imread(str(item.path))
        held = in_validation(f"wild:{item.scene}")
        for o in item.objects:
            if min(o.width, o.height) < min_face:
                continue
            probs = clf.classify(img, o.box)
            top = clf.labels[int(np.argmax(probs))]
            called = "not_face" if top == "not_face" else ("masked" if probs[clf.mask_index] >= analyzer.mask_threshold else "not_masked")
            for part in ("all", "held_out_scenes") if held else ("all",):
                row = table[part].setdefault(o.label, {"masked": 0, "not_masked": 0, "not_face": 0})
                row[called] += 1
    out = {}
    for part, rows in table.items():
        correct = sum(r["masked"] if lab == MUST_UNLOCK else r["not_masked"] + r["not_face"] for lab, r in rows.items())
        n = sum(sum(r.values()) for r in rows.values())
        out[part] = {"confusion": rows, "faces": n, "gate_accuracy": round(correct / n, 4) if n else None}
    out["note"] = "crops of annotated boxes (>= 16 px); 'correct' = masked for with_mask, not masked otherwise"
    return out


def face_free_metrics(analyzer: FrameAnalyzer, shared: Path, *, max_people: int = 1, scenes=None) -> dict:
    from maskgate.facefree import face_free_frames

    frames = ((name, "no_face", "", img) for name, img in face_free_frames(shared, scenes=scenes))
    outcomes = gate_outcomes(analyzer, frames, max_people)
    return {
        "frames": len(outcomes),
        "unlocked": sum(o.unlocked for o in outcomes),
        "faces_reported": sum(o.faces > 0 for o in outcomes),
        "unlocked_frames": [o.name for o in outcomes if o.unlocked][:50],
    }


def threshold_sweep(analyzer: FrameAnalyzer, frames, shared: Path | None = None, *, max_people: int = 1) -> dict:
    """The trade-off at other thresholds (:mod:`maskgate.sweep`), from one run of the models.

    Rows are ``p_mask`` values at the analyzer's detector score, counted over all frames, the frames of
    held-out scenes and (with ``shared``) the face-free frames; ``bounds`` gives, per detector score,
    the highest ``p_mask`` at which some frame that must stay locked would still unlock.
    """
    from maskgate.facefree import face_free_frames
    from maskgate.models.classifier_data import in_validation
    from maskgate.sweep import P_MASK_GRID, SCORE_GRID, Sweep, record_candidates

    door_score, door_p = analyzer.detector.score_threshold, analyzer.mask_threshold
    scores = sorted({*SCORE_GRID, door_score})
    records = record_candidates(analyzer, frames, min(scores))
    n = len(records)
    subsets = {"all": range(n)}
    held = [i for i, r in enumerate(records) if r.source and in_validation(f"wild:{r.source}")]
    if held and len(held) < n:
        subsets["held_out_scenes"] = held
    if shared is not None:
        records += record_candidates(analyzer, ((name, "no_face", "", img) for name, img in face_free_frames(shared)),
                                     min(scores))
        subsets["face_free"] = range(n, len(records))
    sweep = Sweep(records, analyzer, scores, max_people)
    table = [{"p_mask": p, **{part: sweep.counts(door_score, p, idx) for part, idx in subsets.items()}}
             for p in sorted({*P_MASK_GRID, door_p})]
    return {
        "door": {"score": door_score, "p_mask": door_p},
        "table": table,
        "bounds": [{"score": s, "bound": sweep.must_lock_bound(s)} for s in scores],
        "never_unlock": f"{len(sweep.never_unlock(door_score))}/{sum(r.must_unlock for r in records)}",
        "hardest_must_lock": [{"name": r.name, "label": r.label, "unlock_point": round(p, 4)}
                              for p, r in sweep.hardest_must_lock(door_score)],
        "unlock_points": {r.name: p for r, p in zip(records, sweep.points[door_score])},
    }
