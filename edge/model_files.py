"""Which model files the gate runs, and what their manifest says about them.

The packaged int8 models live in :data:`maskgate.models.ARTIFACT_DIR` with ``manifest.json``.  A
model given in the config must have a ``manifest.json`` beside it with an entry of the same file
name: the classifier's labels, crop margin and threshold, and the detector's score threshold, are
properties of the trained model, never guessed by the device.
"""

from __future__ import annotations

import json
from pathlib import Path

from maskgate.edge.analysis import FrameAnalyzer
from maskgate.edge.classifier import MaskClassifier
from maskgate.edge.config import Config
from maskgate.edge.detector import FaceDetector
from maskgate.edge.runtime import load_model
from maskgate.errors import ModelError

#: res10 fine-tuned on masked faces (``maskgate detector train``); the original port's files stay beside
#: it, checked against cv2.dnn by the parity tests
DEFAULT_DETECTOR = "face_detector_ft_224x168_int8.tflite"
DEFAULT_CLASSIFIER = "mask_classifier_int8.tflite"


def artifact_dir() -> Path:
    from maskgate.models import ARTIFACT_DIR

    return ARTIFACT_DIR


def manifest_entry(model_path: Path) -> dict:
    manifest = model_path.parent / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
    except FileNotFoundError:
        raise ModelError(f"no manifest.json beside {model_path}: its labels and thresholds are unknown") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{manifest} cannot be read: {exc}") from None
    entry = data.get("artifacts", {}).get(model_path.name)
    if entry is None:
        raise ModelError(f"{manifest} has no entry for {model_path.name}")
    return entry


def check_against_manifest(model_path: Path, entry: dict) -> None:
    """Refuse a model file whose size or SHA-256 differs from its manifest entry (bit flip, truncation,
    a different file under the same name): the manifest's thresholds belong to those exact bytes."""
    import hashlib

    manifest = model_path.parent / "manifest.json"
    size = model_path.stat().st_size
    if "bytes" in entry and size != entry["bytes"]:
        raise ModelError(f"{model_path} does not match {manifest}: {size} bytes, the manifest says "
                         f"{entry['bytes']} (truncated or replaced); refusing to start")
    if "sha256" in entry:
        digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise ModelError(f"{model_path} does not match {manifest}: sha256 {digest[:16]}..., the manifest says "
                             f"{entry['sha256'][:16]}... (corrupt or replaced); refusing to start")


def model_paths(cfg: Config) -> tuple[Path, Path]:
    base = artifact_dir()
    det = Path(cfg.models.detector) if cfg.models.detector else base / DEFAULT_DETECTOR
    clf = Path(cfg.models.classifier) if cfg.models.classifier else base / DEFAULT_CLASSIFIER
    return det, clf


def build_analyzer(cfg: Config, *, detector: Path | None = None, classifier: Path | None = None) -> FrameAnalyzer:
    """The detector and classifier the config names, with their thresholds (config overrides manifest).

    ``detector`` / ``classifier`` replace the files while keeping the thresholds and crop settings of
    the configured models' manifest entries: that is how the float reference models are evaluated
    with exactly the int8 models' settings.
    """
    det_path, clf_path = model_paths(cfg)
    for p in (det_path, clf_path, detector, classifier):
        if p is not None and not p.is_file():
            raise ModelError(f"model file not found: {p}")
    det_entry = manifest_entry(det_path)
    clf_entry = manifest_entry(clf_path)
    for path, entry in ((det_path, det_entry), (clf_path, clf_entry)):
        if (path == det_path and detector is None) or (path == clf_path and classifier is None):
            check_against_manifest(path, entry)
    try:
        score = cfg.detection.score_threshold
        if score < 0:
            score = float(det_entry["thresholds"]["score"])
        mask_t = cfg.detection.mask_threshold
        if mask_t < 0:
            mask_t = float(clf_entry["thresholds"]["p_mask"])
        labels = list(clf_entry["labels"])
        margin = float(clf_entry["crop"]["margin"])
        flip_average = bool(clf_entry.get("test_time", {}).get("flip_average", False))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"manifest entry of {det_path.name} / {clf_path.name} is incomplete: missing {exc}") from None
    threads, tpu = cfg.models.threads, cfg.models.edgetpu
    face_detector = FaceDetector(load_model(detector or det_path, threads=threads, edgetpu=tpu),
                                 score_threshold=score, nms_threshold=cfg.detection.nms_threshold,
                                 zoom_out=cfg.detection.zoom_out)
    mask_classifier = MaskClassifier(load_model(classifier or clf_path, threads=threads, edgetpu=tpu),
                                     labels=labels, margin=margin, threshold=mask_t, flip_average=flip_average)
    return FrameAnalyzer(face_detector, mask_classifier, min_face=cfg.detection.min_face, mask_threshold=mask_t,
                         max_face_fraction=cfg.detection.max_face_fraction,
                         other_face_score=cfg.detection.other_face_score)
