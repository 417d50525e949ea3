"""Converting a fine-tuned face detector (``maskgate detector train``) to int8, as its own artifact.

The fine-tuned network is res10's graph with new weights, so it goes through the same conversion
and checks as the original (:func:`maskgate.convert.detector.write_detector`) and gets its own file
and manifest entry: the original's parity with cv2.dnn stays what the parity tests check, and this
one records where it came from (the run's settings, seed, machine and time) and what it measures
on held-out doorway frames next to the original (:mod:`maskgate.detector_eval`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from maskgate.convert import manifest
from maskgate.convert.detector import DOORWAY_SIZE, detector_name, face_detector_files, write_detector
from maskgate.errors import DataError

log = logging.getLogger(__name__)


def finetuned_name(width: int, height: int, kind: str = "int8") -> str:
    return f"face_detector_ft_{width}x{height}_{kind}.tflite"


def convert_finetuned(shared: Path, out_dir: Path, run: Path, *, command: str, measure: bool = True,
                      float_dir: Path | None = None, calibration_count: int = 320) -> tuple[str, dict]:
    """The run's weights → ``out_dir/face_detector_ft_WxH_int8.tflite`` and its manifest entry (saved)."""
    from maskgate.convert.pipeline import float_model_dir
    from maskgate.models.detector_finetune import WEIGHTS_NAME, load_finetuned

    weights, report_path = run / WEIGHTS_NAME, run / "report.json"
    if not weights.is_file() or not report_path.is_file():
        raise DataError(f"{run} is not a fine-tuning run (needs {WEIGHTS_NAME} and report.json from `maskgate detector train`)")
    report = json.loads(report_path.read_text())
    w, h = report["settings"]["width"], report["settings"]["height"]
    pb, pbtxt = face_detector_files(shared)
    model = load_finetuned(weights, w, h, pb_path=pb)
    name = finetuned_name(w, h)
    float_dir = float_dir or float_model_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    entry = write_detector(shared, model, out_dir / name, float_dir / finetuned_name(w, h, "float"),
                           source={"file": pb.name, "sha256": manifest.sha256_file(pb),
                                   "finetuned_by": "maskgate detector train",
                                   "weights": {"file": WEIGHTS_NAME, "sha256": manifest.sha256_file(weights)},
                                   "training": {k: report.get(k) for k in ("settings", "frames", "seconds", "machine",
                                                                            "tensorflow", "history")}},
                           command=command, calibration_count=calibration_count)
    man = manifest.load(out_dir)
    previous = man["artifacts"].get(name, {})
    original = man["artifacts"].get(detector_name(*DOORWAY_SIZE), {})
    # the door's detector score is chosen with the classifier (maskgate.convert.classifier); until that
    # reruns for this detector, keep what was chosen before, or start from the original's
    entry["thresholds"] = previous.get("thresholds") or dict(original.get("thresholds", {"score": 0.5}))
    if measure:
        from maskgate.convert.parity import OpenCVReference
        from maskgate.detector_eval import compare_detectors
        from maskgate.edge.detector import FaceDetector
        from maskgate.edge.runtime import load_model

        dets = {"original int8": FaceDetector(load_model(out_dir / detector_name(*DOORWAY_SIZE), threads=1,
                                                         edgetpu="off")).detect_normalized,
                "fine-tuned int8": FaceDetector(load_model(out_dir / name, threads=1, edgetpu="off")).detect_normalized}
        entry["metrics"] = {"held_out_doorway": compare_detectors(shared, dets, reference=OpenCVReference(pb, pbtxt))}
    man["artifacts"][name] = entry
    manifest.save(out_dir, man)
    return name, entry
