"""Converting the mask classifier, and choosing the gate's thresholds with the int8 models.

The thresholds are chosen on development data the classifier was not trained on — the fixed
validation split — and with the models the device runs (int8), then recorded in the manifest:

* ``p_mask``: the lowest probability threshold at which at most ``MAX_CROP_FALSE_ACCEPT`` of the
  validation faces that must not pass (no mask, mask below the nose, not a face) score as masked,
  in colour and again in grayscale (an IR camera at night);
* the detector's ``score``, chosen together with ``p_mask`` (never below the crop-level value):
  the pair with the fewest false rejects on held-out doorway frames among those at which no frame
  that must stay locked would unlock — a held-out person without a mask or with the mask below the
  nose, no person at all in any scene (:mod:`maskgate.facefree`: objects, clothes, walls, empty
  doorways), or any unmasked encounter without colour (IR at night).  A low
  detector threshold finds more masked faces, which res10 scores lower than bare ones; the
  classifier's ``not_face`` class is what keeps the objects found at such scores out.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from maskgate.convert import edgetpu_check, manifest
from maskgate.convert.tflite_export import to_tflite
from maskgate.edge.classifier import MaskClassifier
from maskgate.edge.config import Config
from maskgate.edge.runtime import load_model
from maskgate.sweep import SCORE_GRID, Sweep, record_candidates

log = logging.getLogger(__name__)

CLASSIFIER_NAME = "mask_classifier_int8.tflite"
CLASSIFIER_FLOAT_NAME = "mask_classifier_float.tflite"  # small: committed as the float reference
MAX_CROP_FALSE_ACCEPT = 0.005
MAX_GATE_FALSE_ACCEPT = 0.0
CROP_LEVEL_ON = "validation crops in colour and in grayscale, int8 model"
#: Classify each face and its mirror image and average, unless the training run's settings say
#: otherwise (an ensemble sees each face once); recorded in the manifest, the device follows it.
FLIP_AVERAGE = True


def flip_average_of(keras_path: Path) -> bool:
    """How the model is meant to be run: ``flip_average`` of the training report beside it (default: yes)."""
    report = keras_path.parent / "report.json"
    if not report.is_file():
        return FLIP_AVERAGE
    return bool(json.loads(report.read_text()).get("settings", {}).get("flip_average", FLIP_AVERAGE))


def _probs(path: Path, crops: np.ndarray, labels: list[str], flip_average: bool = FLIP_AVERAGE) -> np.ndarray:
    clf = MaskClassifier(load_model(path, threads=2, edgetpu="off"), labels=labels, margin=0.0, threshold=0.5,
                         flip_average=flip_average)
    out = np.empty((len(crops), len(labels)), np.float32)
    size = crops.shape[1]
    for i, c in enumerate(crops):
        # the crops are already the device's; classify the whole picture as the "box"
        out[i] = clf.classify(c, (0, 0, size, size))
    return out


def convert_classifier(shared: Path, out_dir: Path, float_dir: Path, keras_path: Path, *, command: str,
                       measure: bool = True, calibration_count: int = 320,
                       crops_dir: Path | None = None, limit: int | None = None) -> tuple[str, dict]:
    """Convert ``keras_path`` to int8 and choose its thresholds (``limit``: the crop set of a ``--limit`` run)."""
    from maskgate.convert.detector import door_detector
    from maskgate.models import classifier_data as cd
    from maskgate.models.mask_classifier import load_mask_classifier
    from maskgate.models.train import choose_threshold, device_crops, evaluate_split, grayscale_crops, load_or_build_crops

    model = load_mask_classifier(keras_path)
    detector_path = door_detector(out_dir)
    data = load_or_build_crops(shared, detector_path, crops_dir or keras_path.parent, limit=limit)
    size = int(model.input_shape[1])
    rng = np.random.default_rng(0)
    train_idx = rng.choice(np.flatnonzero(~data["val"]), min(calibration_count, int((~data["val"]).sum())), replace=False)
    calib = device_crops(data["images"][train_idx], size).astype(np.float32)
    val = cd.threshold_split(data["kinds"], data["val"])
    int8_path = out_dir / CLASSIFIER_NAME
    float_path = out_dir / CLASSIFIER_FLOAT_NAME
    log.info("converting the mask classifier (%d calibration crops)", len(calib))
    int8_path.write_bytes(to_tflite(model, lambda: (c[None] for c in calib)))
    float_path.write_bytes(to_tflite(model))

    labels = list(cd.CLASSES)
    flip = flip_average_of(keras_path)
    val_crops = device_crops(data["images"][val], size)
    val_labels, val_kinds = data["labels"][val], data["kinds"][val]
    p_int8 = _probs(int8_path, val_crops, labels, flip)
    p_float = _probs(float_path, val_crops, labels, flip)
    p_int8_gray = _probs(int8_path, grayscale_crops(val_crops), labels, flip)
    choice = choose_threshold(p_int8[:, cd.MASK], val_labels == cd.MASK, MAX_CROP_FALSE_ACCEPT,
                              p_mask_grayscale=p_int8_gray[:, cd.MASK])
    t = choice["threshold"]

    check = edgetpu_check.check_tflite(int8_path)
    entry = manifest.artifact_entry(
        int8_path,
        kind="mask_classifier",
        **manifest.io_fields(check),
        labels=labels,
        crop={"margin": cd.CROP_MARGIN, "size": size, "function": "maskgate.edge.crops.face_crop"},
        test_time={"flip_average": flip},
        thresholds={"p_mask": t, "chosen": {**choice, "on": CROP_LEVEL_ON}},
        source={"file": keras_path.name, "sha256": manifest.sha256_file(keras_path), **_training_record(keras_path)},
        calibration={"crops": len(calib), "from": "training split of the crop set (maskgate train)", "seed": 0},
        edgetpu_check=check.to_json(),
        float_reference={"file": float_path.name, "sha256": manifest.sha256_file(float_path), "committed": True},
        tools=manifest.tool_versions(),
        command=command,
    )
    metrics = {
        "validation_crops": {
            "int8": evaluate_split(p_int8, val_labels, val_kinds, t),
            "float": evaluate_split(p_float, val_labels, val_kinds, t),
        }
    }
    a8 = metrics["validation_crops"]["int8"]["accuracy_argmax"]
    af = metrics["validation_crops"]["float"]["accuracy_argmax"]
    metrics["validation_crops"]["int8_minus_float_points"] = round(100 * (a8 - af), 2)
    entry["metrics"] = metrics

    # The detector threshold needs the new classifier in place: write a provisional manifest entry first.
    man = manifest.load(out_dir)
    man["artifacts"][CLASSIFIER_NAME] = entry
    man["artifacts"].setdefault(detector_path.name, {}).setdefault("thresholds", {"score": 0.5})
    manifest.save(out_dir, man)
    if measure:
        score, p_mask, table = choose_detector_threshold(shared, out_dir, detector_path, t)
        entry["thresholds"] = {"p_mask": p_mask, "chosen": {
            "crop_level": {**choice, "on": CROP_LEVEL_ON},
            "gate_level": {"on": "held-out encounters (false rejects) + must-stay-locked frames: held-out unmasked encounters, "
                                 "face-free frames of every scene, every unmasked encounter in grayscale; int8 models",
                           "best_per_detector_score": table}}}
        man = manifest.load(out_dir)
        man["artifacts"][detector_path.name]["thresholds"] = {"score": score, "chosen_with": CLASSIFIER_NAME}
        man["artifacts"][CLASSIFIER_NAME] = entry
        manifest.save(out_dir, man)
        entry["metrics"]["gate_encounters"] = gate_metrics(shared, out_dir, float_dir, float_path)
    return CLASSIFIER_NAME, entry


def _training_record(keras_path: Path) -> dict:
    """How the Keras model was trained, from the ``report.json`` that ``maskgate train`` writes beside it."""
    report = keras_path.parent / "report.json"
    if not report.is_file():
        return {}
    r = json.loads(report.read_text())
    return {"trained_by": "maskgate train", "training": {
        "settings": r.get("settings"), "seed": (r.get("settings") or {}).get("seed"), "seconds": r.get("seconds"),
        "machine": r.get("machine"), "tensorflow": r.get("tensorflow"), "report": str(report.name)}}


def _config_for(out_dir: Path, score: float | None = None) -> Config:
    from maskgate.convert.detector import door_detector

    cfg = Config().replace(models={"detector": str(door_detector(out_dir)),
                                   "classifier": str(out_dir / CLASSIFIER_NAME), "edgetpu": "off"})
    if score is not None:
        cfg = cfg.replace(detection={"score_threshold": score})
    return cfg


def threshold_frames(shared: Path):
    """The doorway frames the gate-level choice is made on, as ``(name, label, source, image, role)``.

    ``role`` is ``"held_out"`` for the encounters of validation scenes, ``"seen"`` for the other
    encounters (not used by the choice), ``"face_free"`` and ``"dark_unmasked"`` (the unmasked
    encounters of every scene without colour).
    """
    from maskgate.edge.lowlight import grayscale
    from maskgate.evaluation import frames_from_folder
    from maskgate.facefree import face_free_frames
    from maskgate.models.classifier_data import in_validation

    frames = list(frames_from_folder(shared / "data" / "encounters"))
    for n, label, src, img in frames:
        yield n, label, src, img, "held_out" if in_validation(f"wild:{src}") else "seen"
    for n, img in face_free_frames(shared):
        yield n, "no_face", "", img, "face_free"
    for n, label, src, img in frames:
        if label != "with_mask":
            yield n, label, src, grayscale(img), "dark_unmasked"


#: the frames whose verdicts choose the thresholds (the "seen" encounters only get reported)
CHOICE_ROLES = ("held_out", "face_free", "dark_unmasked")


def choose_pair(sweep: Sweep, subset: list[int], min_p_mask: float) -> tuple[float, float, list[dict]]:
    """The (detector score, p_mask) pair of :func:`choose_detector_threshold` from a sweep over ``subset``."""
    table = [sweep.counts(score, float(p), subset) for score in sweep.scores
             for p in np.round(np.arange(min_p_mask, 0.995, 0.01), 4)]
    ok = [r for r in table if r["false_accepts"] <= MAX_GATE_FALSE_ACCEPT * max(r["must_lock"], 1)]
    if not ok:
        best = max(table, key=lambda r: (r["score"], r["p_mask"]))
        log.warning("no threshold pair keeps held-out false accepts at zero; using the strictest (%s, %s)",
                    best["score"], best["p_mask"])
    else:
        best = min(ok, key=lambda r: (r["false_reject_rate"], -r["score"], -r["p_mask"]))
    # keep the table readable: the best p_mask per detector score
    summary = []
    for score in sweep.scores:
        rows = [r for r in (ok or table) if r["score"] == score]
        if rows:
            summary.append(min(rows, key=lambda r: (r["false_reject_rate"], -r["p_mask"])))
    return best["score"], best["p_mask"], summary


def choose_detector_threshold(shared: Path, out_dir: Path, detector_path: Path, min_p_mask: float) -> tuple[float, float, list[dict]]:
    """The detector score and p_mask thresholds, chosen together on doorway frames.

    False rejects are counted on the encounters made from validation scenes (the classifier has
    seen the faces of the others).  No frame that must stay locked may unlock: those held-out
    encounters without a mask or with the mask below the nose, and — as hard constraints from every
    scene, because a door that opens for one of them would open for it anywhere — the face-free
    frames (objects, clothes, walls, empty doorways) and the encounters without a mask seen without
    colour, as an IR camera delivers them at night.  Among the pairs that keep all of them locked,
    the one with the fewest false rejects; ties go to the stricter pair.  ``p_mask`` never goes
    below ``min_p_mask``, the threshold the validation crops allow.
    """
    from maskgate.edge.model_files import build_analyzer

    frames = [f[:4] for f in threshold_frames(shared) if f[4] in CHOICE_ROLES]
    analyzer = build_analyzer(_config_for(out_dir, min(SCORE_GRID)))
    sweep = Sweep(record_candidates(analyzer, frames), analyzer, SCORE_GRID)
    return choose_pair(sweep, list(range(len(frames))), min_p_mask)


def gate_metrics(shared: Path, out_dir: Path, float_dir: Path, float_classifier: Path) -> dict:
    """Gate rates on the encounters and on face-free frames, int8 and float side by side."""
    from maskgate.convert.detector import door_detector
    from maskgate.edge.model_files import build_analyzer
    from maskgate.evaluation import evaluate_gate, face_free_metrics, frames_from_folder

    cfg = _config_for(out_dir)
    out = {}
    float_det = float_dir / door_detector(out_dir, "float").name
    variants = {"int8": {}}
    if float_det.is_file():
        variants["float"] = {"detector": float_det, "classifier": float_classifier}
    else:
        # Said, not silently left out: int8 vs float is a target (`maskgate bench` reads it from here).
        out["float"] = {"skipped": f"float detector not found: {float_det} (`maskgate detector train`, or "
                                   "`maskgate convert --only detector` for the original port, writes it)"}
    for name, files in variants.items():
        analyzer = build_analyzer(cfg, **files)
        out[name] = {
            "encounters": evaluate_gate(analyzer, frames_from_folder(shared / "data" / "encounters")),
            "face_free": face_free_metrics(analyzer, shared),
        }
    return out
