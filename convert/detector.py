"""Converting the res10 face detector: Keras port → int8 TFLite per input size, with its checks."""

from __future__ import annotations

import logging
from pathlib import Path

from maskgate import datasets
from maskgate.convert import calibration, edgetpu_check, manifest, parity
from maskgate.convert.tflite_export import to_tflite
from maskgate.edge.detector import FaceDetector
from maskgate.edge.runtime import load_model

log = logging.getLogger(__name__)

#: The reference size (cv2.dnn's, used for parity) and the doorway size the gate runs by default.
REFERENCE_SIZE = (300, 300)
DOORWAY_SIZE = (224, 168)


def door_detector(models_dir: Path, kind: str = "int8") -> Path:
    """The gate's default detector file in ``models_dir`` (``kind`` "float": its float reference's name)."""
    from maskgate.edge.model_files import DEFAULT_DETECTOR

    return models_dir / DEFAULT_DETECTOR.replace("_int8.", f"_{kind}.")


def detector_name(width: int, height: int, kind: str = "int8") -> str:
    return f"face_detector_{width}x{height}_{kind}.tflite"


def face_detector_files(shared: Path) -> tuple[Path, Path]:
    d = shared / "models" / "face_detector"
    return d / "opencv_face_detector_uint8.pb", d / "opencv_face_detector.pbtxt"


def convert_detector(shared: Path, out_dir: Path, float_dir: Path, width: int, height: int, *,
                     weights: dict, command: str, calibration_count: int = 320, measure: bool = True) -> dict:
    """Write the int8 (``out_dir``) and float (``float_dir``) TFLite files for one input size; return the manifest entry."""
    from maskgate.models.face_detector import build_res10

    pb, _ = face_detector_files(shared)
    model = build_res10(width, height, weights)
    int8_path = out_dir / detector_name(width, height)
    entry = write_detector(shared, model, int8_path, float_dir / detector_name(width, height, "float"),
                           source={"file": pb.name, "sha256": manifest.sha256_file(pb)},
                           command=command, calibration_count=calibration_count)
    if measure:
        entry["metrics"] = measure_detector(shared, model, int8_path, width, height)
    return entry


def write_detector(shared: Path, model, int8_path: Path, float_path: Path, *, source: dict, command: str,
                   calibration_count: int = 320) -> dict:
    """A Keras res10 (``batch_size=1``) → int8 and float TFLite files, checked; the int8 file's manifest entry."""
    _, height, width, _ = model.input_shape
    frames = calibration.detector_frames(shared, width, height, calibration_count)
    log.info("converting %s (%d calibration frames)", int8_path.name, len(frames))
    int8_path.write_bytes(to_tflite(model, lambda: frames))
    float_path.parent.mkdir(parents=True, exist_ok=True)
    float_path.write_bytes(to_tflite(model))

    check = edgetpu_check.check_tflite(int8_path)
    return manifest.artifact_entry(
        int8_path,
        kind="face_detector",
        **manifest.io_fields(check),
        labels=["background", "face"],
        priors="maskgate.edge.ssd.RES10_PRIORS (OpenCV PriorBox settings of the graph)",
        source=source,
        calibration={"frames": len(frames), "from": ["data/wild/images", "data/encounters"], "seed": 0},
        edgetpu_check=check.to_json(),
        float_reference={"file": float_path.name, "sha256": manifest.sha256_file(float_path), "committed": False},
        tools=manifest.tool_versions(),
        command=command,
    )


def measure_detector(shared: Path, keras_model, int8_path: Path, width: int, height: int) -> dict:
    """Parity and recall of this size's float and int8 detectors against cv2.dnn on the wild photos."""
    from maskgate.models.face_detector import KerasFaceDetector

    pb, pbtxt = face_detector_files(shared)
    wild = datasets.read_voc(shared / "data" / "wild")
    ours_float = KerasFaceDetector(keras_model)
    ours_int8 = FaceDetector(load_model(int8_path, threads=2, edgetpu="off"))
    reference = parity.OpenCVReference(pb, pbtxt, width, height)
    metrics = {
        "parity_float_vs_cv2": parity.detection_parity(
            ours_float.detect_normalized, reference, [i.path for i in wild]).to_json(),
        "recall_faces_60px": {
            "cv2_dnn": parity.face_recall(reference, wild),
            "int8": parity.face_recall(ours_int8.detect_normalized, wild),
        },
    }
    r = metrics["recall_faces_60px"]
    r["int8_minus_cv2_points"] = round(100 * (r["int8"]["recall"] - r["cv2_dnn"]["recall"]), 2)
    return metrics
