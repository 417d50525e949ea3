"""``maskgate convert``: both models → int8 TFLite in models/, checked, measured, and recorded in the manifest."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from maskgate.convert import manifest
from maskgate.errors import DataError

log = logging.getLogger(__name__)


def float_model_dir() -> Path:
    """Where float reference models go (not committed: they are 4x larger and rebuilt on demand)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "maskgate" / "float_models"


def convert_all(shared: Path, out_dir: Path, *, detector_sizes: list[tuple[int, int]], classifier_keras: Path | None,
                command: str, measure: bool = True, float_dir: Path | None = None,
                calibration_count: int = 320, crops_dir: Path | None = None) -> dict:
    from maskgate.convert.detector import convert_detector, detector_name, face_detector_files
    from maskgate.models.face_detector import read_graph_weights

    float_dir = float_dir or float_model_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    man = manifest.load(out_dir)
    if detector_sizes:
        pb, _ = face_detector_files(shared)
        if not pb.is_file():
            raise DataError(f"the face detector graph is missing: {pb}")
        weights = read_graph_weights(pb)
        for w, h in detector_sizes:
            entry = convert_detector(shared, out_dir, float_dir, w, h, weights=weights, command=command,
                                     measure=measure, calibration_count=calibration_count)
            previous = man["artifacts"].get(detector_name(w, h), {})
            if "thresholds" in previous:  # chosen with the classifier (see convert.classifier); kept until it reruns
                entry["thresholds"] = previous["thresholds"]
            man["artifacts"][detector_name(w, h)] = entry
            manifest.save(out_dir, man)
    if classifier_keras is not None:
        from maskgate.convert.classifier import convert_classifier

        name, entry = convert_classifier(shared, out_dir, float_dir, classifier_keras, command=command, measure=measure,
                                         calibration_count=calibration_count, crops_dir=crops_dir)
        man = manifest.load(out_dir)  # the classifier step also recorded the detector's threshold
        man["artifacts"][name] = entry
        manifest.save(out_dir, man)
    return man
