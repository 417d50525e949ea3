"""Training frames for fine-tuning the face detector, with their SSD targets.

Every frame is a doorway frame (:mod:`.framing`) around one annotated face of a ``data/wild``
training scene (validation scenes, and so the held-out encounters, are never used), at a random
distance and position, sometimes mirrored, without colour or softened, resized to the detector's
input exactly as the device resizes a camera frame.  Its targets, per prior of the network:

* **positive** — the prior overlaps an annotated face (IoU >= 0.5, or is the face's best prior):
  face score 1, and box offsets towards the face's *target box*.  The target box is the box that
  res10 at its native 300x300 gives for that face when it finds it (so that the fine-tuned model
  boxes faces as cv2.dnn's res10 does, whole faces rather than foreheads), otherwise the annotation;
* **ignored** — it overlaps a face partly (IoU 0.35–0.5), or a face too small or too cut off to
  learn from;
* **distilled** — everything else: the face score of the original network on the same input.  That
  keeps what the original finds and does not find elsewhere (posters, bags, faces nobody annotated).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskgate import datasets
from maskgate.edge.lowlight import grayscale
from maskgate.edge.ssd import RES10_VARIANCES, SSDDecoder
from maskgate.models.classifier_data import in_validation
from maskgate.models.framing import FRAME_SIZE, doorway_frame, map_box

POSITIVE_IOU = 0.5
IGNORE_IOU = 0.35
#: faces smaller than this in the network input (pixels, shorter side) are ignored, not learnt
MIN_INPUT_FACE = 10
#: a face less than this share inside the frame is ignored
MIN_VISIBLE = 0.6
MIN_WILD_FACE = 24  # pixels in the photo, as for the classifier's crops
#: doorway distance: the face's width as a share of the frame width (log-uniform), and its offset
FACE_FRAC = (0.15, 0.6)
OFFSET = (0.2, 0.15)
P_FLIP, P_GRAY, P_BLUR = 0.5, 0.15, 0.2
REFERENCE_SCORE = 0.5


@dataclass
class DetectorFrames:
    """Frames at the network's input size and their ground truth (boxes normalised to the frame)."""

    images: np.ndarray  # (F, H, W, 3) uint8, BGR
    boxes: list[np.ndarray]  # per frame (G, 4) float32, normalised
    labels: list[list[str]]  # per frame, the class of each box
    usable: list[np.ndarray]  # per frame (G,) bool: large and visible enough to learn from
    scenes: list[str]
    references: list[np.ndarray]  # per frame, res10's boxes at 300x300 (cv2.dnn, score >= 0.5), normalised


def wild_training_images(shared, *, validation: bool = False) -> list[datasets.VocImage]:
    """The ``data/wild`` photos of the training scenes (or, with ``validation``, of the held-out ones)."""
    return [i for i in datasets.read_voc(shared / "data" / "wild")
            if in_validation(f"wild:{i.scene}") == validation]


def make_frames(images: list[datasets.VocImage], input_size: tuple[int, int], *, framings: int = 1,
                seed: int = 0, limit: int | None = None, reference=None, hard_framings: int = 0) -> DetectorFrames:
    """Doorway frames around every usable face of ``images``, ``framings`` each, at random distances.

    ``reference(frame, threshold)`` (cv2.dnn's res10 at 300x300, :class:`maskgate.convert.parity.OpenCVReference`)
    gives each frame the boxes that :func:`target_boxes` prefers to the annotations.  A face that the
    reference misses in any of its ``framings`` gets ``hard_framings`` more: the masked faces the gate
    never finds (profiles, faces looking down or cut off, a hand in front) are the ones res10 misses,
    and two framings in a few thousand are too few to learn them from.
    """
    rng = np.random.default_rng(seed)
    w_in, h_in = input_size
    fw, fh = FRAME_SIZE
    out = DetectorFrames(np.empty(0), [], [], [], [], [])
    frames = []

    def add(img, item, obj) -> bool:
        """One framing of ``obj``; whether the reference found it there (True without a reference)."""
        frac = float(np.exp(rng.uniform(np.log(FACE_FRAC[0]), np.log(FACE_FRAC[1]))))
        offset = (float(rng.uniform(-OFFSET[0], OFFSET[0])), float(rng.uniform(-OFFSET[1], OFFSET[1])))
        frame, m = doorway_frame(img, obj.box, face_frac=frac, offset=offset)
        boxes = np.stack([map_box(m, o.box) for o in item.objects]) / np.float32([fw, fh, fw, fh])
        own = map_box(m, obj.box) / np.float32([fw, fh, fw, fh])
        if rng.random() < P_BLUR:
            frame = cv2.GaussianBlur(frame, (0, 0), float(rng.uniform(0.8, 2.5)))
        if rng.random() < P_GRAY:
            frame = grayscale(frame)
        if rng.random() < P_FLIP:
            frame = frame[:, ::-1]
            boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
            own = np.float32([1 - own[2], own[1], 1 - own[0], own[3]])
        frame = np.ascontiguousarray(frame)
        found = True
        if reference is not None:
            ref = reference(frame, REFERENCE_SCORE)[0]
            out.references.append(ref)
            found = bool(len(ref)) and float(pairwise_iou(own[None], ref).max()) >= POSITIVE_IOU
        frames.append(cv2.resize(frame, (w_in, h_in), interpolation=cv2.INTER_LINEAR))
        out.boxes.append(boxes.astype(np.float32))
        out.labels.append([o.label for o in item.objects])
        out.usable.append(_usable(boxes, w_in, h_in))
        out.scenes.append(item.scene)
        return found

    def full() -> bool:
        return limit is not None and len(frames) >= limit

    for item in images:
        img = None
        for obj in item.objects:
            if min(obj.width, obj.height) < MIN_WILD_FACE:
                continue
            if img is None:
                img = cv2.imread(str(item.path))
                if img is None:
                    break
            missed = False
            for _ in range(framings):
                missed |= not add(img, item, obj)
                if full():
                    break
            for _ in range(hard_framings if missed else 0):
                if full():
                    break
                add(img, item, obj)
            if full():
                out.images = np.stack(frames)
                return out
    out.images = np.stack(frames) if frames else np.empty((0, h_in, w_in, 3), np.uint8)
    return out


def add_background_frames(frames: DetectorFrames, images: list[datasets.VocImage], input_size: tuple[int, int], *,
                          per_photo: int = 2, seed: int = 0) -> int:
    """Append doorway frames of regions clear of every annotated face (walls, signs, clothes, hands).

    The original res10 fires on few of them; a network shown only frames around faces learns that
    any light blob in a doorway may be a masked face.  With no face in them, all their priors are
    distilled.  The regions are drawn like :func:`maskgate.facefree.face_free_frames`' but with
    another seed (``seed + 1000``): the face-free frames that choose the door's thresholds are not
    the ones trained on.  Returns how many were added.
    """
    from maskgate.facefree import clear_regions

    rng = np.random.default_rng(seed + 1000)
    w_in, h_in = input_size
    added = []
    for item in images:
        img = cv2.imread(str(item.path))
        if img is None:
            continue
        for box in clear_regions(item, img.shape[1], img.shape[0], rng, per_photo):
            frac = float(np.exp(rng.uniform(np.log(0.25), np.log(FACE_FRAC[1]))))
            frame, _ = doorway_frame(img, box, face_frac=frac)
            if rng.random() < P_GRAY:
                frame = grayscale(frame)
            if frames.references and len(frames.references) == len(frames.boxes):  # keep reference boxes in step
                frames.references.append(np.empty((0, 4), np.float32))
            added.append(cv2.resize(frame, (w_in, h_in), interpolation=cv2.INTER_LINEAR))
            frames.boxes.append(np.empty((0, 4), np.float32))
            frames.labels.append([])
            frames.usable.append(np.empty(0, bool))
            frames.scenes.append(item.scene)
    if added:
        frames.images = np.concatenate([frames.images, np.stack(added)]) if len(frames.images) else np.stack(added)
    return len(added)


def _usable(boxes: np.ndarray, w_in: int, h_in: int) -> np.ndarray:
    clipped = np.clip(boxes, 0.0, 1.0)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    inside = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)
    side = np.minimum((clipped[:, 2] - clipped[:, 0]) * w_in, (clipped[:, 3] - clipped[:, 1]) * h_in)
    return (inside >= MIN_VISIBLE * np.maximum(area, 1e-9)) & (side >= MIN_INPUT_FACE)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every row of ``a`` (N, 4) with every row of ``b`` (G, 4): (N, G)."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def encode_boxes(priors: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """CENTER_SIZE offsets of ``boxes`` against ``priors`` (row by row), the inverse of SSD decoding."""
    v = np.asarray(RES10_VARIANCES, np.float32)
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    pcx, pcy = (priors[:, 0] + priors[:, 2]) / 2, (priors[:, 1] + priors[:, 3]) / 2
    bw = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6)
    bh = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    bcx, bcy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([(bcx - pcx) / pw / v[0], (bcy - pcy) / ph / v[1],
                     np.log(bw / pw) / v[2], np.log(bh / ph) / v[3]], axis=1).astype(np.float32)


def target_boxes(annotated: np.ndarray, reference: np.ndarray, min_iou: float = 0.5) -> np.ndarray:
    """Each annotated face's box as res10 at 300x300 boxes it (``reference``) where it finds it, else the annotation."""
    out = annotated.copy()
    if len(reference) and len(annotated):
        iou = pairwise_iou(annotated, reference)
        best = iou.argmax(axis=1)
        found = iou[np.arange(len(annotated)), best] >= min_iou
        out[found] = reference[best[found]]
    return out


@dataclass
class PriorTargets:
    """Per prior of each frame: 1 positive, 0 distilled, -1 ignored; box offsets of the positives."""

    kind: np.ndarray  # (F, N) int8
    loc: np.ndarray  # (F, N, 4) float32 (zeros where not positive)


def assign(decoder: SSDDecoder, boxes: list[np.ndarray], usable: list[np.ndarray],
           references: list[np.ndarray] | None = None) -> PriorTargets:
    """SSD matching of every frame's faces to the priors (see the module docstring)."""
    priors = decoder.priors
    n = len(priors)
    kind = np.zeros((len(boxes), n), np.int8)
    loc = np.zeros((len(boxes), n, 4), np.float32)
    for f, (b, ok) in enumerate(zip(boxes, usable)):
        if not len(b):
            continue
        iou = pairwise_iou(priors, b)  # (N, G)
        near = iou.max(axis=1)
        kind[f, near >= IGNORE_IOU] = -1
        if not ok.any():
            continue
        goal = target_boxes(b, references[f]) if references is not None else b
        iou_ok = np.where(ok[None, :], iou, 0.0)
        best_gt = iou_ok.argmax(axis=1)
        pos = iou_ok[np.arange(n), best_gt] >= POSITIVE_IOU
        best_prior = iou_ok.argmax(axis=0)  # every usable face gets at least its best prior
        pos[best_prior[ok]] = True
        best_gt[best_prior[ok]] = np.flatnonzero(ok)
        kind[f, pos] = 1
        loc[f, pos] = encode_boxes(priors[pos], goal[best_gt[pos]])
    return PriorTargets(kind, loc)
