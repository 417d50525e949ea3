"""The device's mask classifier: crop, int8 in and out, mirror averaging."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskgate.edge.classifier import MaskClassifier
from maskgate.edge.model_files import DEFAULT_CLASSIFIER, artifact_dir, manifest_entry
from maskgate.edge.runtime import load_model
from maskgate.errors import ModelError

PATH = artifact_dir() / DEFAULT_CLASSIFIER


def classifier(**kw) -> MaskClassifier:
    entry = manifest_entry(PATH)
    return MaskClassifier(load_model(PATH, threads=1, edgetpu="off"), labels=entry["labels"],
                          margin=0.0, threshold=0.5, **kw)


def face_pictures(shared, n=6):
    paths = sorted((shared / "data" / "encounters").glob("*.jpg"))[:n]
    return [cv2.resize(cv2.imread(str(p))[60:420, 140:500], (96, 96), interpolation=cv2.INTER_AREA) for p in paths]


def test_mirror_averaging_is_the_mean_of_the_crop_and_its_mirror_image(shared):
    plain, averaged = classifier(), classifier(flip_average=True)
    box = (0, 0, 96, 96)
    differs = 0
    for pic in face_pictures(shared):
        want = (plain.classify(pic, box) + plain.classify(np.ascontiguousarray(pic[:, ::-1]), box)) / 2
        got = averaged.classify(pic, box)
        np.testing.assert_allclose(got, want, atol=1e-6)
        assert got.sum() == pytest.approx(1.0, abs=0.02)
        differs += not np.allclose(got, plain.classify(pic, box), atol=1e-3)
        # a mirrored picture gets the same averaged answer
        np.testing.assert_allclose(averaged.classify(np.ascontiguousarray(pic[:, ::-1]), box), got, atol=1e-6)
    assert differs, "the mirror image never changed a probability: the flip did not reach the model"


def test_classifier_refuses_labels_that_do_not_fit_the_model():
    with pytest.raises(ModelError, match="outputs but"):
        MaskClassifier(load_model(PATH, threads=1, edgetpu="off"), labels=["with_mask", "without_mask"],
                       margin=0.2, threshold=0.5)
    with pytest.raises(ModelError, match="lack 'with_mask'"):
        MaskClassifier(load_model(PATH, threads=1, edgetpu="off"), labels=["a", "b", "c"], margin=0.2, threshold=0.5)
