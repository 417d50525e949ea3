"""cv2.dnn res10 alone (float): the strongest off-the-shelf runtime for the same detector."""

from __future__ import annotations

from pathlib import Path

import cv2

from maskgate.bench.common import SEEDS_THRESHOLD, Row, Skipped, _file_bytes


def _res10_files() -> tuple[Path, Path]:
    from maskgate import datasets
    from maskgate.convert.detector import face_detector_files

    shared = datasets.shared_dir(required=False)
    if shared is None:
        raise Skipped("../shared not found (set MASKGATE_SHARED): it holds OpenCV's res10 model")
    pb, pbtxt = face_detector_files(shared)
    if not pb.is_file() or not pbtxt.is_file():
        raise Skipped(f"OpenCV's res10 model not found ({pb})")
    return pb, pbtxt


def row_cv2(width: int = 300, height: int = 300, name: str = "cv2_res10") -> Row:
    from maskgate.convert.parity import OpenCVReference

    pb, pbtxt = _res10_files()
    net = OpenCVReference(pb, pbtxt, width, height)  # a fresh net per input size (OpenCV 5 reuses shapes)
    return Row(name, lambda frame: net(frame, SEEDS_THRESHOLD), _file_bytes(pb, pbtxt),
               f"cv2.dnn {cv2.__version__} res10 {width}x{height}, threshold {SEEDS_THRESHOLD}",
               faces=lambda out: len(out[0]))
