"""The mask classifier's training data, built from ../shared the way the gate sees faces.

Every example is a face found by **the device's own detector** (the int8 TFLite model through
:class:`maskgate.edge.detector.FaceDetector`) in a doorway-framed picture (:mod:`.framing`), cut
out by **the device's own crop function** (:func:`maskgate.edge.crops.face_crop`).  What is stored is
a *context crop* — the same square with a wider margin — so that training can jitter the crop box,
rotate and rescale without running out of pixels; the centre of a context crop is exactly the
device's crop.

Sources, and how they are labelled:

* ``data/faces`` (with_mask / without_mask): each picture framed as a doorway frame, the detector's
  best face kept; when it finds none, the whole picture stands for the face (the issue's fallback).
  Many of its mask pictures are loose crops or have masks pasted on (see ../shared/README.md), so
  they are not the only source:
* ``data/wild`` photos: every annotated face of at least 24 px, framed like the encounters; the
  detection that matches the annotation (IoU >= 0.3) is cropped, the annotation itself when the
  detector missed it.  ``without_mask`` and ``mask_weared_incorrect`` (nose or mouth uncovered) are
  both "not masked" — the gate must deny both — and the rarer ones are framed several times;
* ``not_face``: what a detector may fire on that is not a face — detections in those frames far from
  every annotated face, and regions of the photos away from all faces (backgrounds, clothes, hands,
  signs), and the detector's boxes in those regions framed as an empty doorway.  A third class lets the classifier say "not a face", so a false face can never unlock.

The split is fixed and by origin: a wild photo (scene) and all its faces are in validation when a
hash of its name says so (20 %), a face picture likewise (15 %).  Encounter frames made from
validation scenes are therefore never seen in training.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maskgate import datasets
from maskgate.edge.crops import face_crop
from maskgate.edge.detector import FaceDetector
from maskgate.edge.ssd import iou_one_to_many
from maskgate.models.framing import doorway_frame, map_box

log = logging.getLogger(__name__)

CLASSES = ("with_mask", "without_mask", "not_face")
MASK, NO_MASK, NOT_FACE = range(3)

#: The device crop: square around the detected box, 20 % margin each side, resized to 96x96.
CROP_MARGIN = 0.2
CROP_SIZE = 96
#: Stored context: the same square with a 50 % margin (2x the box), 144 px: the device crop is its
#: central 1.4/2.0 = 70 %.
CONTEXT_MARGIN = 0.5
CONTEXT_SIZE = 144

VAL_SHARE = {"wild": 20, "faces": 15, "faces12k": 15}  # percent
#: Sources whose validation examples choose the thresholds and compare models.  ``faces12k``'s are
#: held out of training but reported apart: its two classes come from different sources (web photos,
#: aligned celebrity portraits), and its easy unmasked portraits would loosen the 0.5 % rule.
THRESHOLD_SOURCES = ("faces", "wild")
MIN_WILD_FACE = 24
FRAMES_PER_LABEL = {"with_mask": 2, "without_mask": 3, "mask_weared_incorrect": 4}


def in_validation(group: str) -> bool:
    """Fixed split by origin: a stable hash of ``kind:name``."""
    kind = group.split(":", 1)[0]
    h = int(hashlib.sha1(group.encode()).hexdigest()[:8], 16)
    return h % 100 < VAL_SHARE.get(kind, 20)


#: "Not a face" examples that are detections away from every annotated face.  Many are faces nobody
#: annotated (../shared/README.md says some are), most of them masked: of the 32 validation crops the
#: committed classifier scores most "masked" among those that must not pass, at least 11 are such
#: detections and show a masked face (looked at by eye, 2026-12-02; docs/training.md, "The label audit").
UNANNOTATED_PRONE = ("wild/false_detection", "wild/doorway_false_detection")


def threshold_split(kinds: np.ndarray, val: np.ndarray, *, audited: bool = True) -> np.ndarray:
    """The validation examples that choose thresholds and compare models (see :data:`THRESHOLD_SOURCES`).

    ``audited`` (the committed rule since 2026-12-02) also leaves out :data:`UNANNOTATED_PRONE`: the
    crop-level rule then counts annotated faces and face-free regions only, and objects are left to
    the gate-level rule's face-free frames (which were checked by eye, :mod:`maskgate.facefree`).
    ``maskgate seeds --unaudited`` judges runs by the earlier rule, every example counted.
    """
    source = np.char.partition(kinds.astype(str), "/")[:, 0]
    keep = val & np.isin(source, THRESHOLD_SOURCES)
    return keep & ~np.isin(kinds.astype(str), UNANNOTATED_PRONE) if audited else keep


def context_crop(frame: np.ndarray, box) -> np.ndarray:
    return face_crop(frame, box, CONTEXT_MARGIN, CONTEXT_SIZE)


def device_crop_from_context(ctx: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The device's ``size`` crop, recovered from a context crop (its centre)."""
    side = CONTEXT_SIZE * (1 + 2 * CROP_MARGIN) / (1 + 2 * CONTEXT_MARGIN)
    o = (CONTEXT_SIZE - side) / 2
    m = np.array([[size / side, 0, -o * size / side], [0, size / side, -o * size / side]])
    return cv2.warpAffine(ctx, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


@dataclass
class CropSet:
    images: list[np.ndarray] = field(default_factory=list)  # CONTEXT_SIZE² BGR uint8
    labels: list[int] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # "wild:scene_0001", "faces:with_mask_0001", ...
    kinds: list[str] = field(default_factory=list)  # detail: which source and label

    def add(self, ctx: np.ndarray, label: int, group: str, kind: str) -> None:
        self.images.append(ctx)
        self.labels.append(label)
        self.groups.append(group)
        self.kinds.append(kind)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "images": np.stack(self.images), "labels": np.asarray(self.labels, np.int64),
            "groups": np.asarray(self.groups), "kinds": np.asarray(self.kinds),
            "val": np.asarray([in_validation(g) for g in self.groups]),
        }


def _best_match(boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, min_iou: float):
    if len(boxes) == 0:
        return None
    ious = iou_one_to_many(gt, boxes)
    j = int(np.argmax(ious))
    return boxes[j] if ious[j] >= min_iou else None


def faces_examples(shared: Path, detector: FaceDetector, out: CropSet, rng: np.random.Generator,
                   limit: int | None = None, source: str = "faces") -> None:
    """Pictures of one face each (``data/<source>/<label>/``), framed as doorway frames."""
    items = datasets.read_faces(shared / "data" / source)
    if limit:
        items = [items[i] for i in rng.choice(len(items), min(limit, len(items)), replace=False)]
    fallback = 0
    for path, label in items:
        img = cv2.imread(str(path))
        if img is None:
            log.warning("unreadable image skipped: %s", path)
            continue
        h, w = img.shape[:2]
        whole = (0, 0, w, h)
        frame, m = doorway_frame(img, whole, face_frac=float(rng.uniform(0.38, 0.55)),
                                 offset=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))))
        boxes, scores = detector.detect(frame, score_threshold=0.3)
        inside = map_box(m, whole)
        if len(boxes):
            # the best face that lies in the picture (not in the grey padding)
            ok = iou_one_to_many(inside, boxes) > 0.05
            box = boxes[ok][0] if ok.any() else None
        else:
            box = None
        if box is None:
            box = inside
            fallback += 1
        out.add(context_crop(frame, box), MASK if label == "with_mask" else NO_MASK, f"{source}:{path.stem}",
                f"{source}/{label}")
    log.info("%s: %d pictures, %d without a detected face (whole picture used)", source, len(items), fallback)


def wild_examples(shared: Path, detector: FaceDetector, out: CropSet, rng: np.random.Generator,
                  limit: int | None = None, negatives_per_scene: int = 4) -> None:
    images = datasets.read_voc(shared / "data" / "wild")
    if limit:
        images = images[:limit]
    missed = 0
    for item in images:
        img = cv2.imread(str(item.path))
        group = f"wild:{item.scene}"
        gts = [o for o in item.objects if o.label in datasets.FACE_LABELS]
        for obj in gts:
            if min(obj.width, obj.height) < MIN_WILD_FACE:
                continue
            for _ in range(FRAMES_PER_LABEL.get(obj.label, 1)):
                frame, m = doorway_frame(img, obj.box, face_frac=float(rng.uniform(0.32, 0.48)),
                                         offset=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))))
                boxes, scores = detector.detect(frame, score_threshold=0.05)
                gt = map_box(m, obj.box)
                box = _best_match(boxes, scores, gt, 0.3)
                if box is None:
                    box, missed = gt, missed + 1
                label = MASK if obj.label == "with_mask" else NO_MASK
                out.add(context_crop(frame, box), label, group, f"wild/{obj.label}")
                # detections far from every annotated face: what the detector fires on that is not a face
                others = np.stack([map_box(m, o.box) for o in gts])
                for b, s in zip(boxes, scores):
                    if s < 0.1 or iou_one_to_many(b, others).max() > 0.02:
                        continue
                    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                    if any(o[0] <= cx <= o[2] and o[1] <= cy <= o[3] for o in others):
                        continue
                    out.add(context_crop(frame, b), NOT_FACE, group, "wild/false_detection")
        _background_examples(img, item, group, out, rng, negatives_per_scene, detector)
    log.info("wild: %d photos, %d faces the detector missed (annotation used)", len(images), missed)


#: Doorway frames of face-free regions: the detector's boxes there (down to this score and width in
#: frame pixels, at most this many per frame) are the false faces the gate meets when nobody is at
#: the door — res10 fires on clothes, walls and hands at scores of 0.05-0.3, as low as on some
#: masked faces, so the classifier must be the one to say "not a face".
DOORWAY_NEGATIVE_SCORE = 0.05
DOORWAY_NEGATIVE_MIN_WIDTH = 40
DOORWAY_NEGATIVES_PER_FRAME = 2


def _background_examples(img: np.ndarray, item: datasets.VocImage, group: str, out: CropSet,
                         rng: np.random.Generator, count: int, detector: FaceDetector) -> None:
    """Face-sized regions of the photo that touch no annotated face, and what the detector finds there."""
    h, w = img.shape[:2]
    faces = np.array([o.box for o in item.objects], np.float32).reshape(-1, 4)
    median = float(np.median(faces[:, 2] - faces[:, 0])) if len(faces) else w / 6
    got = tries = 0
    while got < count and tries < count * 20:
        tries += 1
        side = float(np.clip(median * rng.uniform(0.6, 2.5), 24, min(w, h) * 0.9))
        x1, y1 = rng.uniform(0, w - side), rng.uniform(0, h - side)
        box = np.array([x1, y1, x1 + side, y1 + side], np.float32)
        if len(faces):
            # no overlap with any face, grown by half its size
            grown = faces + np.stack([-(faces[:, 2] - faces[:, 0]) / 2, -(faces[:, 3] - faces[:, 1]) / 2,
                                      (faces[:, 2] - faces[:, 0]) / 2, (faces[:, 3] - faces[:, 1]) / 2], 1)
            if iou_one_to_many(box, grown).max() > 0:
                continue
        frame, m = doorway_frame(img, box, face_frac=float(rng.uniform(0.32, 0.48)))
        out.add(context_crop(frame, map_box(m, box)), NOT_FACE, group, "wild/background")
        boxes, _ = detector.detect(frame, score_threshold=DOORWAY_NEGATIVE_SCORE)
        wide = [b for b in boxes if b[2] - b[0] >= DOORWAY_NEGATIVE_MIN_WIDTH]
        for b in wide[:DOORWAY_NEGATIVES_PER_FRAME]:
            out.add(context_crop(frame, b), NOT_FACE, group, "wild/doorway_false_detection")
        got += 1


def build_crop_set(shared: Path, detector: FaceDetector, *, seed: int = 0, limit: int | None = None) -> dict[str, np.ndarray]:
    """All examples as arrays: images (N, 144, 144, 3), labels, groups, kinds, val (bool)."""
    rng = np.random.default_rng(seed)
    out = CropSet()
    faces_examples(shared, detector, out, rng, limit=limit)
    wild_examples(shared, detector, out, rng, limit=limit)
    if (shared / "data" / "faces12k").is_dir():
        faces_examples(shared, detector, out, np.random.default_rng(seed + 12), limit=limit, source="faces12k")
    return out.arrays()
