"""Comparing training recipes over seeds: every run judged at gate level the way ``maskgate convert`` would.

A single training run varies by about ±3 of the 105 held-out masked encounters, as much as most
ideas change, so an idea is judged over several seeds (``maskgate train --recipe R --seed S``, one
folder per run) and this module puts the runs side by side: mean and spread per recipe, and whether
the difference of two recipes' means is larger than their spread says it could be by chance.

Each run is judged with its float Keras model (int8 is within a few tenths of a point of it, and
converting every run would cost more than the comparison), with the gate's own candidate logic:
the device's detector runs once over the frames, its candidates (the gate's size, same-person and
score rules) are recorded with their crops, and each run's classifier scores those crops as the
device would (averaged with the mirror image where the run's settings ask for it).  Thresholds
follow the committed rules exactly: the crop-level ``p_mask``
from the run's validation crops (:func:`maskgate.models.train.choose_threshold`, in colour and
grayscale), then the gate-level pair (:func:`maskgate.convert.classifier.choose_pair`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskgate.edge.analysis import Candidate, FrameAnalyzer
from maskgate.edge.crops import face_crop
from maskgate.errors import ModelError
from maskgate.models import classifier_data as cd

log = logging.getLogger(__name__)


class _CropRecorder:
    """Stands in for the classifier inside a real :class:`FrameAnalyzer`: keeps each candidate's crop."""

    mask_index = cd.MASK
    not_face_index = cd.NOT_FACE

    def __init__(self, margin: float, size: int):
        self.margin, self.size, self.crops = margin, size, []

    def classify(self, frame: np.ndarray, box) -> np.ndarray:
        self.crops.append(face_crop(frame, box, self.margin, self.size))
        return np.full(len(cd.CLASSES), len(self.crops) - 1, np.float32)  # the crop's index, replaced later


@dataclass
class RecordedFrames:
    names: list[str]
    labels: list[str]
    roles: list[str]
    candidates: list[list[Candidate]]  # probs hold the crop index
    crops: np.ndarray  # every candidate's crop at the classifier's input size


def record_frames(shared: Path, detector_path: Path, size: int, *, min_score: float = 0.05,
                  per_role: int | None = None) -> RecordedFrames:
    """Run the device's detector once over the threshold frames and keep every candidate's crop.

    ``per_role`` keeps only the first that many frames of each role (quick runs and tests).
    """
    from maskgate.convert.classifier import threshold_frames
    from maskgate.edge.config import Config
    from maskgate.edge.detector import FaceDetector
    from maskgate.edge.runtime import load_model

    d = Config().detection
    recorder = _CropRecorder(cd.CROP_MARGIN, size)
    analyzer = FrameAnalyzer(FaceDetector(load_model(detector_path, threads=2, edgetpu="off"),
                                          score_threshold=min_score, nms_threshold=d.nms_threshold),
                             recorder, min_face=d.min_face, mask_threshold=0.5,
                             max_face_fraction=d.max_face_fraction, other_face_score=d.other_face_score)
    out = RecordedFrames([], [], [], [], np.empty(0))
    for name, label, _src, img, role in threshold_frames(shared):
        if per_role is not None and out.roles.count(role) >= per_role:
            continue
        out.names.append(name)
        out.labels.append(label)
        out.roles.append(role)
        out.candidates.append(analyzer.candidates(img, min_score))
    out.crops = np.stack(recorder.crops) if recorder.crops else np.empty((0, size, size, 3), np.uint8)
    return out


def cached_frames(shared: Path, detector_path: Path, size: int, cache_dir: Path, *,
                  per_role: int | None = None) -> RecordedFrames:
    """:func:`record_frames`, kept in ``cache_dir`` keyed by the detector, the crop size and this module."""
    import hashlib
    import pickle

    key = hashlib.sha256(detector_path.read_bytes())
    key.update(repr((size, per_role)).encode())
    key.update(Path(__file__).read_bytes())
    path = cache_dir / f"frames_{key.hexdigest()[:12]}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    rec = record_frames(shared, detector_path, size, per_role=per_role)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(rec))
    return rec


def _keras_scorer(run_dir: Path):
    """(input size, probabilities of a crop batch as the device computes them, recipe, seed, training seconds) of a run."""
    from maskgate.models.mask_classifier import load_mask_classifier
    from maskgate.models.train import flip_averaged

    model = load_mask_classifier(run_dir / "mask_classifier.keras")
    report = json.loads((run_dir / "report.json").read_text())
    s = report["settings"]
    flip = s.get("flip_average", True)
    return (int(model.input_shape[1]), lambda crops: flip_averaged(model, crops, flip), s.get("recipe", "custom"), s["seed"],
            report.get("seconds"))


def _tflite_scorer(path: Path):
    """The same for a converted model file (the committed classifier, as a reference line in the table)."""
    from maskgate.convert.classifier import FLIP_AVERAGE, _probs
    from maskgate.edge.model_files import manifest_entry

    try:
        flip = bool(manifest_entry(path).get("test_time", {}).get("flip_average", FLIP_AVERAGE))
    except ModelError:
        flip = FLIP_AVERAGE
    return (_model_size(path), lambda crops: _probs(path, crops, list(cd.CLASSES), flip), f"committed {path.name}", "-",
            None)


def judge_run(run: Path, frames_by_size: dict[int, RecordedFrames], crop_set: dict, *, audited: bool = True) -> dict:
    """Crop-level and gate-level figures of one training run folder (Keras model and report) or model file."""
    from types import SimpleNamespace

    from maskgate.convert.classifier import CHOICE_ROLES, choose_pair
    from maskgate.models.train import choose_threshold, device_crops, grayscale_crops
    from maskgate.sweep import SCORE_GRID, Record, Sweep

    size, scorer, recipe, seed, seconds = (_tflite_scorer if run.suffix == ".tflite" else _keras_scorer)(run)
    val = cd.threshold_split(crop_set["kinds"], crop_set["val"], audited=audited)
    val_crops = device_crops(crop_set["images"][val], size)
    is_mask = crop_set["labels"][val] == cd.MASK
    p = scorer(val_crops)[:, cd.MASK]
    pg = scorer(grayscale_crops(val_crops))[:, cd.MASK]
    crop_choice = choose_threshold(p, is_mask, 0.005, p_mask_grayscale=pg)

    rec = frames_by_size[size]
    probs = scorer(rec.crops) if len(rec.crops) else np.empty((0, len(cd.CLASSES)))
    records = [Record(n, lab, "", [Candidate(c.box, c.score, probs[int(c.probs[0])]) for c in cands])
               for n, lab, cands in zip(rec.names, rec.labels, rec.candidates)]
    stand_in = SimpleNamespace(classifier=SimpleNamespace(mask_index=cd.MASK, not_face_index=cd.NOT_FACE),
                               other_face_score=0.5)
    sweep = Sweep(records, stand_in, SCORE_GRID)
    by_role = {r: [i for i, x in enumerate(rec.roles) if x == r] for r in set(rec.roles)}
    choice_idx = sorted(i for r in CHOICE_ROLES for i in by_role.get(r, []))
    score, p_mask, _ = choose_pair(sweep, choice_idx, crop_choice["threshold"])
    encounters = sorted(by_role.get("held_out", []) + by_role.get("seen", []))
    held = sweep.counts(score, p_mask, by_role.get("held_out", []))
    every = sweep.counts(score, p_mask, encounters)
    locked = sweep.counts(score, p_mask, choice_idx)
    return {
        "run": run.name, "recipe": recipe, "seed": seed, "train_seconds": seconds,
        "crop_p_mask": crop_choice["threshold"],
        "crop_false_reject_rate": crop_choice["false_reject_rate"],
        "crop_false_reject_rate_grayscale": crop_choice["grayscale"]["false_reject_rate"],
        "score": score, "p_mask": p_mask,
        "held_out_false_rejects": held["false_rejects"], "held_out_masked": held["must_unlock"],
        "all_false_rejects": every["false_rejects"], "all_masked": every["must_unlock"],
        "must_lock_unlocked": locked["false_accepts"], "must_lock": locked["must_lock"],
        "no_face_at_any_threshold": len(sweep.never_unlock(min(SCORE_GRID), encounters)),
        "held_out_no_face_at_any_threshold": len(sweep.never_unlock(min(SCORE_GRID), by_role.get("held_out", []))),
    }


def mean_sd(values: list[float]) -> tuple[float, float]:
    m = float(np.mean(values))
    return m, float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def welch_t(a: list[float], b: list[float]) -> float | None:
    """Welch's t statistic of two recipes' means (|t| above ~2.8 at 3+3 seeds: unlikely by chance, p < 0.05)."""
    if len(a) < 2 or len(b) < 2:
        return None
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    se = math.sqrt(sa * sa / len(a) + sb * sb / len(b))
    return (ma - mb) / se if se > 0 else (math.inf if ma != mb else 0.0)


#: the figures compared, each a count of refused masked visitors or a rate (lower is better)
COMPARED = (("held_out_false_rejects", "held-out FR (of {held_out_masked})"),
            ("all_false_rejects", "all FR (of {all_masked})"),
            # the detector floor; held out, because a detector fine-tuned on the other scenes' faces can learn those
            ("held_out_no_face_at_any_threshold", "held-out with no face at any threshold"),
            ("crop_false_reject_rate", "val crops below p_mask"),
            ("crop_p_mask", "crop p_mask"))


def table(results: list[dict], baseline: str | None = None) -> str:
    """A Markdown table: per recipe, mean ± sd over its seeds, and Welch's t against ``baseline``."""
    recipes = list(dict.fromkeys(r["recipe"] for r in results))
    baseline = baseline if baseline in recipes else recipes[0]
    head = ["recipe", "seeds"] + [label.format(**results[0]) for _, label in COMPARED] + ["must-lock unlocked", "minutes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in recipes:
        rows = [r for r in results if r["recipe"] == name]
        cells = [name, ",".join(str(r["seed"]) for r in rows)]
        for key, _ in COMPARED:
            if any(key not in r for r in results):  # runs judged before the figure existed
                cells.append("–")
                continue
            vals = [r[key] for r in rows]
            m, sd = mean_sd(vals)
            pct = key.endswith("rate")
            cell = f"{100 * m:.1f} ± {100 * sd:.1f} %" if pct else (f"{m:.3f} ± {sd:.3f}" if key == "crop_p_mask" else f"{m:.1f} ± {sd:.1f}")
            t = welch_t(vals, [r[key] for r in results if r["recipe"] == baseline]) if name != baseline else None
            if t is not None:
                cell += f" (t {t:+.1f})"
            cells.append(cell)
        cells.append(str(sum(r["must_lock_unlocked"] for r in rows)))
        secs = [r["train_seconds"] for r in rows if r.get("train_seconds")]
        cells.append(f"{np.mean(secs) / 60:.1f}" if secs else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _model_size(path: Path) -> int:
    from maskgate.edge.runtime import load_model

    return int(load_model(path, threads=1, edgetpu="off").input_shape[1])


def compare(shared: Path, detector_path: Path, run_dirs: list[Path], crops_dir: Path, *, baseline: str | None = None,
            per_role: int | None = None, limit: int | None = None, audited: bool = True) -> tuple[list[dict], str]:
    """Judge every run and tabulate them (``limit``: the crop set of ``maskgate train --limit``; tests).

    ``audited`` (the committed rule; False: every example counted): the crop-level rule without :data:`~maskgate.models.classifier_data.UNANNOTATED_PRONE`.
    """
    from maskgate.models.train import load_or_build_crops

    crop_set = load_or_build_crops(shared, detector_path, crops_dir, limit=limit)
    sizes = {}
    results = []
    for run in run_dirs:
        size = (_model_size(run) if run.suffix == ".tflite"
                else int(json.loads((run / "report.json").read_text())["settings"].get("input_size", cd.CROP_SIZE)))
        if size not in sizes:
            log.info("recording the detector's candidates at crop size %d", size)
            sizes[size] = cached_frames(shared, detector_path, size, crops_dir, per_role=per_role)
        results.append(judge_run(run, sizes, crop_set, audited=audited))
        log.info("%s: %s", run.name, results[-1])
    return results, table(results, baseline)
