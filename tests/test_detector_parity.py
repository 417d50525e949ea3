"""The Keras port of res10 against cv2.dnn, the reference (needs the train extra for Keras).

Parity on a sample of the wild photos (the full 569 are measured at conversion and recorded in the
manifest), the int8 model's recall on faces >= 60 px against cv2.dnn's on all of them, and the
detector's zoom_out view (frame shrunk inside a grey border, boxes mapped back).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import need_tensorflow
from maskgate import datasets
from maskgate.convert.detector import face_detector_files
from maskgate.convert.parity import OpenCVReference, detection_parity, face_recall
from maskgate.edge.detector import ZOOM_BORDER, FaceDetector
from maskgate.edge.runtime import load_model
from maskgate.edge.ssd import iou_one_to_many
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


def test_zoom_out_shows_the_frame_smaller_inside_a_grey_border_and_maps_boxes_back(shared):
    """``detection.zoom_out``: the network sees the frame shrunk and centred on grey; the boxes it
    returns are still in frame pixels, where the face is."""
    frame = cv2.imread(str(shared / "data" / "encounters" / "0001.jpg"))
    path = ARTIFACT_DIR / "face_detector_300x300_int8.tflite"
    plain = FaceDetector(load_model(path, threads=2, edgetpu="off"))
    zoomed = FaceDetector(load_model(path, threads=2, edgetpu="off"), zoom_out=1.5)

    zoomed.run(frame)
    buf = zoomed.model.input_buffer()
    x0, y0, iw, ih = zoomed._inner
    assert (iw, ih) == (200, 200) and (x0, y0) == (50, 50)
    assert (buf[:y0] == ZOOM_BORDER).all() and (buf[:, :x0] == ZOOM_BORDER).all()
    assert (buf[y0 + ih:] == ZOOM_BORDER).all() and (buf[:, x0 + iw:] == ZOOM_BORDER).all()
    inner = cv2.resize(frame, (iw, ih), interpolation=cv2.INTER_AREA)
    assert np.array_equal(buf[y0:y0 + ih, x0:x0 + iw], inner)
    del buf

    b1, _ = plain.detect(frame, 0.5)
    b2, _ = zoomed.detect(frame, 0.5)
    assert len(b1) and len(b2), "the visitor's face is found with and without zoom"
    assert iou_one_to_many(b1[0], b2[:1])[0] >= 0.7, (b1[0], b2[0])
    assert (b2[:, 2] <= frame.shape[1]).all() and (b2[:, 3] <= frame.shape[0]).all()


def test_zoom_out_outside_its_range_is_refused():
    path = ARTIFACT_DIR / "face_detector_224x168_int8.tflite"
    with pytest.raises(ValueError, match="zoom_out"):
        FaceDetector(load_model(path, threads=2, edgetpu="off"), zoom_out=0.9)
