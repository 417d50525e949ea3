"""Training and conversion, on small inputs: the same code `maskgate train` / `convert` run in full."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import need_tensorflow
from maskgate.convert.edgetpu_check import check_tflite
from maskgate.edge.model_files import DEFAULT_DETECTOR


@pytest.fixture(autouse=True)
def _tf():
    need_tensorflow()


def test_detector_conversion_is_full_int8_with_real_calibration(shared, tmp_path):
    from maskgate.convert.detector import convert_detector, face_detector_files
    from maskgate.edge.detector import FaceDetector
    from maskgate.edge.runtime import load_model
    from maskgate.models.face_detector import read_graph_weights

    weights = read_graph_weights(face_detector_files(shared)[0])
    entry = convert_detector(shared, tmp_path, tmp_path / "float", 160, 120, weights=weights,
                             command="maskgate convert (test)", calibration_count=8, measure=False)
    path = tmp_path / "face_detector_160x120_int8.tflite"
    assert entry["edgetpu_check"]["ok"], entry["edgetpu_check"]["problems"]
    assert entry["input"]["shape"] == [1, 120, 160, 3] and entry["input"]["dtype"] == "uint8"
    assert entry["calibration"]["frames"] == 8
    report = check_tflite(path)
    assert report.ok and report.ops["L2_NORMALIZATION"] == 1
    det = FaceDetector(load_model(path, threads=1, edgetpu="off"))
    assert det.decoder.num_priors == 1884  # priors follow the input size (cv2.dnn gives 1884 at 160x120)
    import cv2

    frame = cv2.imread(str(shared / "data" / "encounters" / "0019.jpg"))
    boxes, scores = det.detect(frame, 0.05)
    assert len(boxes) >= 1  # a big face at the door is found even with 8 calibration frames


def test_training_and_classifier_conversion_on_a_few_pictures(shared, tmp_path):
    from maskgate.convert.classifier import convert_classifier
    from maskgate.edge.classifier import MaskClassifier
    from maskgate.edge.runtime import load_model
    from maskgate.models import ARTIFACT_DIR
    from maskgate.models.train import TrainSettings, train

    out = tmp_path / "models"
    out.mkdir()
    det = out / DEFAULT_DETECTOR
    shutil.copy(ARTIFACT_DIR / det.name, det)
    build = tmp_path / "build"
    report = train(shared, det, build, TrainSettings(epochs=1, epoch_size=64, batch_size=16), limit=12)
    for name in ("mask_classifier.keras", "curves.png", "confusion.png", "report.json"):
        assert (build / name).stat().st_size > 0
    assert report["examples"]["train"] > 0 and report["examples"]["validation"] > 0
    assert len(report["validation"]["confusion_argmax"]) == 3
    name, entry = convert_classifier(shared, out, tmp_path / "float", build / "mask_classifier.keras",
                                     command="maskgate train (test)", measure=False, calibration_count=16, limit=12)
    assert entry["edgetpu_check"]["ok"], entry["edgetpu_check"]["problems"]
    assert entry["bytes"] < 1_000_000
    assert entry["labels"] == ["with_mask", "without_mask", "not_face"]
    clf = MaskClassifier(load_model(out / name, threads=1, edgetpu="off"), labels=entry["labels"],
                         margin=entry["crop"]["margin"], threshold=entry["thresholds"]["p_mask"])
    probs = clf.classify(np.full((480, 640, 3), 127, np.uint8), (200, 100, 440, 380))
    assert probs.shape == (3,) and abs(float(probs.sum()) - 1.0) < 0.05


def test_a_training_run_is_judged_at_gate_level_as_convert_would(shared, tmp_path):
    """The multi-seed comparison's judge, on a tiny run and a few frames of each kind."""
    from maskgate.models import ARTIFACT_DIR
    from maskgate.models.seed_compare import compare
    from maskgate.models.train import recipe_settings, train

    det = ARTIFACT_DIR / "face_detector_224x168_int8.tflite"
    run = tmp_path / "fast_s3"
    train(shared, det, run, recipe_settings("fast", seed=3, epochs=1, epoch_size=64, batch_size=16), limit=12,
          crops_dir=tmp_path)
    results, text = compare(shared, det, [run], tmp_path, per_role=4, limit=12)
    r = results[0]
    assert r["recipe"] == "fast" and r["seed"] == 3
    # 4 frames per role: the held-out encounters' unmasked ones, 4 face-free and 4 dark unmasked must stay locked
    assert r["all_masked"] >= r["held_out_masked"] and 8 <= r["must_lock"] <= 12
    assert 0.5 <= r["crop_p_mask"] <= 0.999 and r["p_mask"] >= r["crop_p_mask"]
    assert r["score"] in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
    assert "| fast | 3 |" in text


def _scores(rng: np.random.Generator, n: int = 1000):
    """p_mask of n negatives (low) and n masked examples (high), their concatenation and the mask labels."""
    neg, pos = rng.beta(2, 8, n), rng.beta(8, 2, n)
    return neg, pos, np.concatenate([neg, pos]), np.r_[np.zeros(n, bool), np.ones(n, bool)]


def test_threshold_choice_keeps_false_accepts_at_the_target():
    from maskgate.models.train import choose_threshold

    neg, pos, p, is_mask = _scores(np.random.default_rng(0))
    c = choose_threshold(p, is_mask, 0.01)
    assert c["false_accept_rate"] <= 0.01
    assert np.mean(neg >= c["threshold"]) <= 0.01
    looser = choose_threshold(p, is_mask, 0.05)
    assert looser["threshold"] <= c["threshold"] and looser["false_reject_rate"] <= c["false_reject_rate"]


def test_threshold_choice_holds_the_false_accept_target_in_grayscale_too():
    from maskgate.models.train import choose_threshold

    rng = np.random.default_rng(1)
    neg, pos, p, is_mask = _scores(rng)
    colour_only = choose_threshold(p, is_mask, 0.01)
    # without colour, unmasked faces look more like masked ones: the grayscale negatives score higher
    gray = np.concatenate([rng.beta(4, 5, 1000), rng.beta(6, 3, 1000)])
    both = choose_threshold(p, is_mask, 0.01, p_mask_grayscale=gray)
    assert both["threshold"] > colour_only["threshold"]
    assert np.mean(gray[:1000] >= both["threshold"]) <= 0.01 and both["grayscale"]["false_accept_rate"] <= 0.01
    assert np.mean(neg >= both["threshold"]) <= 0.01
    # the other way round the colour negatives decide, and grayscale changes nothing
    easy_gray = np.concatenate([neg * 0.5, pos])
    assert choose_threshold(p, is_mask, 0.01, p_mask_grayscale=easy_gray)["threshold"] == colour_only["threshold"]


def test_the_threshold_is_rounded_up_so_that_rounding_lets_no_negative_through():
    from maskgate.models.train import choose_threshold

    neg = np.array([0.1, 0.2, 0.880849])  # round(0.880849 + ε, 4) would be 0.8808, below this negative
    pos = np.array([0.95, 0.99])
    c = choose_threshold(np.r_[neg, pos], np.r_[np.zeros(3, bool), np.ones(2, bool)], 0.0)
    assert c["threshold"] == 0.8809 and c["false_accept_rate"] == 0.0


def test_the_training_profile_times_each_variant_side_by_side():
    from maskgate.models.train_profile import profile

    p = profile(batch_size=4, size=32, repeats=1)
    steps = {k: v for k, v in p.items() if k.startswith("step_ms_")}
    assert set(steps) == {"step_ms_keras_batch_norm", "step_ms_fused_batch_norm", "step_ms_no_batch_norm"}
    assert all(v > 0 for v in steps.values()) and p["augment_ms_per_batch"] > 0
    assert p["ratios_to_keras_batch_norm"]["step_ms_keras_batch_norm"] == 1.0
    assert 0 < p["augment_share_of_fused_step"] < 1


def test_an_ensemble_averages_its_members_and_converts_to_one_int8_file(shared, tmp_path):
    """Two tiny members trained, put together as one model, converted; the device runs it as any classifier."""
    from maskgate.convert.classifier import convert_classifier
    from maskgate.models import ARTIFACT_DIR
    from maskgate.models.ensemble import is_run_of, member_settings, train_ensemble
    from maskgate.models.mask_classifier import load_mask_classifier
    from maskgate.models.train import recipe_settings, train

    out = tmp_path / "models"
    out.mkdir()
    det = out / DEFAULT_DETECTOR
    shutil.copy(ARTIFACT_DIR / det.name, det)
    tiny = dict(epochs=1, epoch_size=64, batch_size=16)
    s = recipe_settings("v2x2", seed=1, **tiny)
    members = [tmp_path / "v2_s2", tmp_path / "v2_s3"]
    # one member is already there (as `maskgate seeds` finds it): it is used, the other trained
    train(shared, det, members[0], member_settings(s, 2), limit=12, crops_dir=tmp_path)
    first = (members[0] / "mask_classifier.keras").stat().st_mtime_ns
    report = train_ensemble(shared, det, tmp_path / "ens", s, limit=12, crops_dir=tmp_path, member_dirs=members)
    assert (members[0] / "mask_classifier.keras").stat().st_mtime_ns == first
    assert [m["seed"] for m in report["members"]] == [2, 3] and is_run_of(members[1], member_settings(s, 3))
    assert report["settings"]["flip_average"] is False and report["settings"]["members"] == 2
    assert is_run_of(tmp_path / "ens", s) and not is_run_of(tmp_path / "ens", recipe_settings("v2x2", seed=0, **tiny))

    ens = load_mask_classifier(tmp_path / "ens" / "mask_classifier.keras")
    crops = np.random.default_rng(0).integers(0, 256, (6, 96, 96, 3)).astype(np.float32)
    parts = [load_mask_classifier(d / "mask_classifier.keras").predict(crops, verbose=0) for d in members]
    np.testing.assert_allclose(ens.predict(crops, verbose=0), (parts[0] + parts[1]) / 2, atol=1e-5)

    name, entry = convert_classifier(shared, out, tmp_path / "float", tmp_path / "ens" / "mask_classifier.keras",
                                     command="maskgate train (test)", measure=False, calibration_count=16, limit=12,
                                     crops_dir=tmp_path)
    assert entry["edgetpu_check"]["ok"], entry["edgetpu_check"]["problems"]
    assert entry["test_time"] == {"flip_average": False} and entry["source"]["training"]["settings"]["members"] == 2
    assert entry["bytes"] < 1_000_000
