"""The Keras port of res10 against cv2.dnn, the reference (needs the train extra for Keras).

Parity on a sample of the wild photos (the full 569 are measured at conversion and recorded in the
manifest), and the int8 model's recall on faces >= 60 px against cv2.dnn's on all of them.
"""

from __future__ import annotations

import pytest

from conftest import need_tensorflow
from maskgate import datasets
from maskgate.convert.detector import face_detector_files
from maskgate.convert.parity import OpenCVReference, detection_parity, face_recall
from maskgate.edge.detector import FaceDetector
from maskgate.edge.runtime import load_model
from maskgate.models import ARTIFACT_DIR


@pytest.fixture(scope="module")
def wild(shared):
    return datasets.read_voc(shared / "data" / "wild")


@pytest.fixture(scope="module")
def keras_detector(shared):
    need_tensorflow()
    from maskgate.models.face_detector import KerasFaceDetector, build_res10

    pb, _ = face_detector_files(shared)
    return KerasFaceDetector(build_res10(300, 300, pb_path=pb))


def test_keras_port_reproduces_cv2_dnn_detections(shared, wild, keras_detector):
    pb, pbtxt = face_detector_files(shared)
    sample = [i.path for i in wild[::12]]  # 48 photos
    report = detection_parity(keras_detector.detect_normalized, OpenCVReference(pb, pbtxt), sample)
    assert report.reference_detections >= 50
    assert report.ok, report.failures
    assert report.worst_iou >= 0.9 and report.worst_score_diff <= 0.02


def test_int8_recall_on_faces_of_60px_is_within_one_point_of_cv2(shared, wild):
    pb, pbtxt = face_detector_files(shared)
    ours = FaceDetector(load_model(ARTIFACT_DIR / "face_detector_300x300_int8.tflite", threads=2, edgetpu="off"))
    ref = face_recall(OpenCVReference(pb, pbtxt), wild)
    got = face_recall(ours.detect_normalized, wild)
    assert ref["faces"] == got["faces"] > 300
    assert abs(got["recall"] - ref["recall"]) <= 0.01


def test_weights_are_dequantized_like_the_graph(shared):
    need_tensorflow()
    import numpy as np

    from maskgate.models.face_detector import dequantize_min_first, read_graph_weights

    w = read_graph_weights(face_detector_files(shared)[0])
    assert all(np.isfinite(v).all() for v in w.values())  # TF's own kernel gives NaN on the [0, FLT_MIN] constants
    # MIN_FIRST: the minimum rounded to a whole number of steps of (max - min) / 255
    q = np.array([0, 1, 255], np.uint8)
    # step (max - min) / 255; the minimum is rounded to a whole number of float32 steps (as TF does)
    step = 2 / 255
    base = round(-1.0 / float(np.float32(step))) * float(np.float32(step))
    assert abs(base + 1.0) <= step / 2
    np.testing.assert_allclose(dequantize_min_first(q, -1.0, 1.0), [base, base + step, base + 255 * step], rtol=1e-7)
    assert (dequantize_min_first(np.zeros(3, np.uint8), 0.0, 1.1754944e-38) == 0).all()
