"""The seeds' pipeline: cv2.dnn res10 300x300 + Keras MobileNetV2 ``predict`` per face (TensorFlow extra)."""

from __future__ import annotations

import cv2
import numpy as np

from maskgate.errors import DependencyMissing
from maskgate.bench.common import SEEDS_INPUT, SEEDS_THRESHOLD, Row, Skipped, _file_bytes
from maskgate.bench.cv2_dnn import _res10_files


class SeedsPipeline:
    """The tutorials' mask detector: cv2.dnn res10 → per face a MobileNetV2 ``predict`` call."""

    def __init__(self, threads: int):
        from maskgate.convert.parity import OpenCVReference

        pb, pbtxt = _res10_files()
        try:
            from maskgate.models._tf import import_keras, import_tensorflow

            tf = import_tensorflow()
        except DependencyMissing:
            raise Skipped("TensorFlow is not installed (the optional train extra: pip install -e '.[train]')") from None
        self.note = ""
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError as exc:  # TensorFlow already ran something in this process
            self.note = f"TensorFlow threads could not be set: {exc}"
        keras = import_keras()
        self.keras = keras
        self.model = keras.applications.MobileNetV2(input_shape=(SEEDS_INPUT, SEEDS_INPUT, 3), alpha=1.0,
                                                    weights=None, classes=2)
        self.preprocess = keras.applications.mobilenet_v2.preprocess_input
        self.net = OpenCVReference(pb, pbtxt, 300, 300)
        self.files = (pb, pbtxt)
        self.tf_version = tf.__version__

    def __call__(self, frame: np.ndarray) -> list[np.ndarray]:
        h, w = frame.shape[:2]
        boxes, _ = self.net(frame, SEEDS_THRESHOLD)
        preds = []
        for box in boxes:
            x1, y1, x2, y2 = (box * np.array([w, h, w, h])).astype(int)
            x1, y1 = max(0, x1), max(0, y1)
            x2, y2 = min(w - 1, x2), min(h - 1, y2)
            face = frame[y1:y2, x1:x2]
            if face.size == 0:
                continue
            face = cv2.resize(cv2.cvtColor(face, cv2.COLOR_BGR2RGB), (SEEDS_INPUT, SEEDS_INPUT))
            x = self.preprocess(face.astype(np.float32))[None]
            preds.append(self.model.predict(x, verbose=0)[0])
        return preds


def row_seeds(threads: int) -> Row:
    s = SeedsPipeline(threads)
    weights = s.model.count_params() * 4
    row = Row("seeds", s, _file_bytes(*s.files) + weights,
              f"cv2.dnn res10 300x300 + MobileNetV2 alpha 1.0 224x224 (TensorFlow {s.tf_version}), predict per face; "
              f"model bytes count MobileNetV2's {s.model.count_params():,} weights as float32")
    if s.note:
        row.info["note"] = s.note
    return row
