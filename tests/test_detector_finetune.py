"""Fine-tuning the face detector (maskgate detector train / compare / convert) on small inputs."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np

from conftest import need_tensorflow
from maskgate.edge.ssd import SSDDecoder
from maskgate.models import detector_data as dd


def test_encoding_is_the_inverse_of_the_devices_decoding():
    dec = SSDDecoder(224, 168)
    rng = np.random.default_rng(0)
    idx = rng.choice(dec.num_priors, 50, replace=False)
    c = rng.uniform(0.2, 0.8, (50, 2))
    wh = rng.uniform(0.05, 0.6, (50, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    loc = np.zeros((dec.num_priors, 4), np.float32)
    loc[idx] = dd.encode_boxes(dec.priors[idx], boxes)
    scores = np.zeros(dec.num_priors, np.float32)
    for k, i in enumerate(idx):  # one at a time: NMS would merge overlapping boxes
        scores[:] = 0
        scores[i] = 0.9
        got, _ = dec.decode(loc, scores, 0.5)
        np.testing.assert_allclose(got[0], boxes[k], atol=1e-5)


def test_assignment_marks_positives_ignored_and_distilled_priors():
    dec = SSDDecoder(224, 168)
    face = np.array([[0.35, 0.25, 0.65, 0.75]], np.float32)
    tiny = np.array([[0.01, 0.01, 0.02, 0.02]], np.float32)
    boxes = np.concatenate([face, tiny])
    usable = dd._usable(boxes, 224, 168)
    assert usable.tolist() == [True, False]  # 2 px in the network input: ignored, not learnt
    t = dd.assign(dec, [boxes], [usable])
    iou = dd.pairwise_iou(dec.priors, face)[:, 0]
    kind = t.kind[0]
    assert kind[iou.argmax()] == 1
    assert (kind[iou >= dd.POSITIVE_IOU] == 1).all()
    assert (kind[(iou >= dd.IGNORE_IOU) & (iou < dd.POSITIVE_IOU) & (np.arange(len(iou)) != iou.argmax())] == -1).all()
    far = dd.pairwise_iou(dec.priors, boxes).max(1) < dd.IGNORE_IOU
    assert (kind[far] == 0).all() and far.sum() > 3000
    # the box offsets of a positive decode to the face
    i = int(iou.argmax())
    scores = np.zeros(dec.num_priors, np.float32)
    scores[i] = 1
    got, _ = dec.decode(t.loc[0], scores, 0.5)
    np.testing.assert_allclose(got[0], face[0], atol=1e-5)


def test_target_boxes_prefer_the_reference_where_it_finds_the_face():
    annotated = np.array([[0.4, 0.4, 0.6, 0.6], [0.0, 0.0, 0.1, 0.1]], np.float32)
    reference = np.array([[0.38, 0.36, 0.62, 0.62]], np.float32)  # res10's looser box of the first face
    got = dd.target_boxes(annotated, reference)
    np.testing.assert_array_equal(got[0], reference[0])
    np.testing.assert_array_equal(got[1], annotated[1])  # not found by the reference: the annotation


def test_training_frames_come_from_training_scenes_with_their_faces_mapped(shared):
    from maskgate.models.classifier_data import in_validation

    images = dd.wild_training_images(shared)[:6]
    assert images and not any(in_validation(f"wild:{i.scene}") for i in images)
    assert all(in_validation(f"wild:{i.scene}") for i in dd.wild_training_images(shared, validation=True))
    frames = dd.make_frames(images, (224, 168), framings=2, seed=3)
    assert frames.images.shape[1:] == (168, 224, 3) and len(frames.images) == len(frames.boxes)
    # every frame is framed around one of its faces: some annotated box lies near the middle
    for boxes in frames.boxes:
        c = (boxes[:, :2] + boxes[:, 2:]) / 2
        assert np.abs(c - 0.5).max(axis=1).min() < 0.25
    n = dd.add_background_frames(frames, images, (224, 168), per_photo=1)
    assert n > 0 and len(frames.images) == len(frames.boxes) and all(len(b) == 0 for b in frames.boxes[-n:])


def test_faces_the_reference_misses_get_more_framings_and_the_rest_draw_as_before(shared):
    images = dd.wild_training_images(shared)[:6]
    plain = dd.make_frames(images, (224, 168), framings=2, seed=3)
    faces = len(plain.images) // 2
    assert faces >= 3
    # a reference that finds every face in every framing: nothing is added and every draw is the same
    seen = iter(plain.boxes)
    found = dd.make_frames(images, (224, 168), framings=2, seed=3, hard_framings=3,
                           reference=lambda frame, threshold: (next(seen),))
    np.testing.assert_array_equal(found.images, plain.images)
    # one that finds nothing: every face gets three more, right after its own two
    missed = dd.make_frames(images, (224, 168), framings=2, seed=3, hard_framings=3,
                            reference=lambda frame, threshold: (np.empty((0, 4), np.float32),))
    assert len(missed.images) == 5 * faces == len(missed.references) == len(missed.boxes)
    np.testing.assert_array_equal(missed.images[:2], plain.images[:2])
    first = images[0].scene
    assert [s == first for s in missed.scenes[:5]] == [True] * 5
    # with a limit, the hard framings stop there too
    assert len(dd.make_frames(images, (224, 168), framings=2, seed=3, hard_framings=3, limit=4,
                              reference=lambda frame, threshold: (np.empty((0, 4), np.float32),)).images) == 4


def test_background_frames_are_not_the_face_free_frames_that_choose_thresholds(shared):
    from maskgate.facefree import face_free_frames

    images = [i for i in dd.wild_training_images(shared)[:10]]
    frames = dd.DetectorFrames(np.empty(0), [], [], [], [], [])
    dd.add_background_frames(frames, images, (640, 480), per_photo=1)
    chosen = {n: f for n, f in face_free_frames(shared, scenes={i.scene for i in images}, drawn=0)}
    assert chosen
    small = [cv2.resize(f, (64, 48)).astype(np.float32) for f in chosen.values()]
    for img in frames.images:
        x = cv2.resize(img, (64, 48)).astype(np.float32)
        assert min(np.abs(x - s).mean() for s in small) > 2.0


def test_detector_eval_against_itself_and_on_synthetic_scores(shared):
    from maskgate.detector_eval import EvalFrame, boxes_like_reference, recall_table

    frames = [EvalFrame(np.zeros((480, 640, 3), np.uint8), np.array([0.3, 0.2, 0.7, 0.8], np.float32), lab, frac)
              for lab, frac in [("with_mask", 0.4), ("with_mask", 0.15), ("without_mask", 0.4), ("with_mask", 0.4)]]
    table = recall_table(frames, np.array([0.9, 0.07, 0.3, 0.0], np.float32))
    assert table["with_mask"] == {"faces": 3, "recall_door": round(1 / 3, 4), "recall_0.5": round(1 / 3, 4),
                                  "none_at_any_threshold": round(1 / 3, 4)}
    assert table["without_mask"]["recall_door"] == 1.0 and table["without_mask"]["recall_0.5"] == 0.0
    dets = [(f.box[None], np.array([0.9], np.float32)) for f in frames]
    same = boxes_like_reference(frames, dets, dets)
    assert same == {"faces": 4, "boxed_iou_0.5": 1.0, "median_iou": 1.0}
    shifted = [(b + np.float32([0.3, 0, 0.3, 0]), s) for b, s in dets]
    assert boxes_like_reference(frames, shifted, dets)["boxed_iou_0.5"] == 0.0
    # the gate's best face at the door counts: a forehead box scored above the whole face wins
    forehead = np.float32([0.35, 0.2, 0.65, 0.4])
    both = [(np.stack([forehead, f.box]), np.float32([0.2, 0.9])) for f in frames]
    assert boxes_like_reference(frames, both, dets)["boxed_iou_0.5"] == 1.0
    worse = [(np.stack([forehead, f.box]), np.float32([0.9, 0.2])) for f in frames]
    assert boxes_like_reference(frames, worse, dets)["boxed_iou_0.5"] == 0.0
    only_forehead = [(forehead[None], np.float32([0.9])) for _ in frames]
    assert boxes_like_reference(frames, only_forehead, dets)["boxed_iou_0.5"] == 0.0
    # an encounter (no annotated face): every door-sized face cv2.dnn finds is judged, each on its own
    left, right, tiny = np.float32([0.05, 0.2, 0.4, 0.7]), np.float32([0.6, 0.2, 0.95, 0.7]), np.float32([0.45, 0.1, 0.5, 0.16])
    encounter = [EvalFrame(np.zeros((480, 640, 3), np.uint8), None, "with_mask", float("nan"))]
    ref = [(np.stack([left, right, tiny]), np.float32([0.9, 0.8, 0.9]))]
    gate = [(np.stack([left, tiny]), np.float32([0.9, 0.9]))]  # finds the left face only
    assert boxes_like_reference(encounter, gate, ref) == {"faces": 2, "boxed_iou_0.5": 0.5, "median_iou": 0.5}
    # cv2.dnn's ghost of a large face, shifted down and right past the frame's edges, is not a face to judge
    ghost = np.float32([0.55, 0.35, 1.1, 1.2])
    with_ghost = [(np.stack([left, right, tiny, ghost]), np.float32([0.9, 0.8, 0.9, 0.9]))]
    assert boxes_like_reference(encounter, gate, with_ghost) == {"faces": 2, "boxed_iou_0.5": 0.5, "median_iou": 0.5}


def test_finetuning_learns_the_faces_it_is_shown_and_converts_to_int8(shared, tmp_path, monkeypatch):
    need_tensorflow()
    from maskgate.cli import main
    from maskgate.convert.detector import face_detector_files
    from maskgate.convert.finetuned_detector import convert_finetuned, finetuned_name
    from maskgate.edge.detector import FaceDetector
    from maskgate.edge.runtime import load_model
    from maskgate.models import ARTIFACT_DIR
    from maskgate.models.detector_finetune import WEIGHTS_NAME, load_finetuned, teacher_scores
    from maskgate.models.face_detector import build_res10

    run = tmp_path / "run"
    assert main(["detector", "train", "--limit", "24", "--epochs", "3", "--out", str(run), "--no-convert",
                 "--shared", str(shared)]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["frames"] >= 24 and len(report["history"]) == 3 and report["settings"]["seed"] == 0
    assert report["history"][-1]["loss"] < report["history"][0]["loss"]

    # on the frames it was shown, the fine-tuned network scores the annotated faces higher than res10
    pb = face_detector_files(shared)[0]
    frames = dd.make_frames(dd.wild_training_images(shared), (224, 168), framings=2, seed=0, limit=24)
    targets = dd.assign(SSDDecoder(224, 168), frames.boxes, frames.usable)
    pos = targets.kind == 1
    before = teacher_scores(build_res10(224, 168, pb_path=pb, batch_size=None), frames.images)
    after = teacher_scores(load_finetuned(run / WEIGHTS_NAME, 224, 168, pb_path=pb, batch_size=None), frames.images)
    assert after[pos].astype(np.float32).mean() > before[pos].astype(np.float32).mean() + 0.05

    out = tmp_path / "models"
    out.mkdir()
    for name in ("face_detector_224x168_int8.tflite", "manifest.json"):
        shutil.copy(ARTIFACT_DIR / name, out / name)
    name, entry = convert_finetuned(shared, out, run, command="test", measure=False, float_dir=tmp_path / "float",
                                    calibration_count=8)
    assert name == finetuned_name(224, 168)
    assert entry["edgetpu_check"]["ok"] and entry["input"]["dtype"] == "uint8"
    assert entry["source"]["training"]["settings"]["epochs"] == 3
    committed = json.loads((ARTIFACT_DIR / "manifest.json").read_text())["artifacts"]
    # the score chosen with the classifier for a detector of this name is kept (else the original's)
    kept = committed.get(name) or committed["face_detector_224x168_int8.tflite"]
    assert entry["thresholds"]["score"] == kept["thresholds"]["score"]
    assert name in json.loads((out / "manifest.json").read_text())["artifacts"]
    det = FaceDetector(load_model(out / name, threads=1, edgetpu="off"))
    boxes, _ = det.detect(cv2.imread(str(shared / "data" / "encounters" / "0019.jpg")), 0.05)
    assert len(boxes) >= 1
    # a folder that does not exist yet (a side-by-side conversion, `--out build/...`) is made
    fresh = tmp_path / "a" / "new" / "folder"
    again, _ = convert_finetuned(shared, fresh, run, command="test", measure=False, float_dir=tmp_path / "float",
                                 calibration_count=8)
    assert (fresh / again).is_file() and again in json.loads((fresh / "manifest.json").read_text())["artifacts"]


def test_detector_command_names_a_bad_run(shared, tmp_path, capsys):
    need_tensorflow()
    from maskgate.cli import main

    assert main(["detector", "convert", str(tmp_path), "--shared", str(shared)]) == 1
    assert "not a fine-tuning run" in capsys.readouterr().err
    assert main(["detector", "compare", str(tmp_path / "nothing.tflite"), "--shared", str(shared)]) == 1
    assert "detector not found" in capsys.readouterr().err
