"""Per-frame analysis: detect faces, keep the ones at the door, classify each.

This is the hot path.  It allocates only what the results need (a few faces), logs nothing, and
reports its own inference time so the gate can publish it without timing anything itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from maskgate.edge.classifier import MaskClassifier
from maskgate.edge.detector import FaceDetector


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels
    score: float  # detector score
    p_mask: float  # classifier probability of a correctly worn mask
    label: str  # "with_mask" | "without_mask"
    masked: bool  # p_mask >= the decision threshold

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    def to_json(self) -> dict:
        return {"box": list(self.box), "score": round(self.score, 4), "label": self.label, "p_mask": round(self.p_mask, 4)}


@dataclass(frozen=True)
class FrameResult:
    faces: tuple[Face, ...]  # faces at the door (>= min_face), largest first
    infer_ms: float  # detector + classifier time for this frame
    rejected: int = 0  # detections the classifier called "not a face"
    analysed: bool = True  # False when the frame was skipped (motion gate: empty, unchanged doorway)

    @property
    def largest(self) -> Face | None:
        return self.faces[0] if self.faces else None


NOTHING = FrameResult((), 0.0, 0, False)


class FrameAnalyzer:
    """Detector + classifier with the gate's thresholds.

    A detection becomes a :class:`Face` when

    * it is at least ``min_face`` pixels wide and at most ``max_face_fraction`` of the frame wide —
      res10's largest priors (264-315 px) exceed a small input, and at low scores they produce boxes
      covering most of the frame, which are never a face at the door;
    * it does not mostly lie on a detection with a higher score (intersection over the smaller box
      >= ``SAME_PERSON_OVERLAP``): NMS only merges boxes of similar size, and the detector's weaker
      boxes around a face (the mask alone, head and shoulders) are the same person, not a second one;
    * the classifier does not call it "not a face" (its most likely label).

    The person at the door is the largest such face the detector is confident about
    (``other_face_score``), or the largest face when it is confident about none.  Any other face is kept — and so counts for
    ``max_people`` and "another person without a mask" — only when the detector is confident about it
    (``other_face_score``).  The detector threshold is low so that masked faces, which res10 scores
    low, are found at all; at such scores it also fires on ears, hands and patterned clothes beside
    the person.  A real second person is a bare face (res10 scores those high) or a masked one.

    ``mask_threshold`` decides ``masked``; below it the face counts as unmasked, whatever the argmax says.
    """

    SAME_PERSON_OVERLAP = 0.5

    def __init__(self, detector: FaceDetector, classifier: MaskClassifier, *, min_face: int, mask_threshold: float,
                 max_face_fraction: float = 0.7, other_face_score: float = 0.5):
        self.detector = detector
        self.classifier = classifier
        self.min_face = min_face
        self.mask_threshold = mask_threshold
        self.max_face_fraction = max_face_fraction
        self.other_face_score = other_face_score

    def candidates(self, frame: np.ndarray, score_threshold: float | None = None) -> list["Candidate"]:
        """Detections that fit a face at the door, one per person, each with its class probabilities."""
        boxes, scores = self.detector.detect(frame, score_threshold)
        out = []
        if len(boxes):
            widths = boxes[:, 2] - boxes[:, 0]
            fits = (widths >= self.min_face) & (widths <= self.max_face_fraction * frame.shape[1])
            for box, score in _distinct_people(boxes[fits], scores[fits], self.SAME_PERSON_OVERLAP):
                out.append(Candidate(tuple(int(round(v)) for v in box), float(score), self.classifier.classify(frame, box)))
        return out

    def analyse(self, frame: np.ndarray) -> FrameResult:
        t0 = time.perf_counter()
        cands = self.candidates(frame)
        clf = self.classifier
        faces, rejected = select_faces(cands, mask_index=clf.mask_index, not_face_index=clf.not_face_index,
                                       mask_threshold=self.mask_threshold, other_face_score=self.other_face_score)
        return FrameResult(faces, (time.perf_counter() - t0) * 1000.0, rejected)


@dataclass(frozen=True)
class Candidate:
    box: tuple[int, int, int, int]
    score: float
    probs: np.ndarray  # classifier probabilities, in the classifier's label order


def select_faces(cands: list[Candidate], *, mask_index: int, not_face_index: int | None, mask_threshold: float,
                 other_face_score: float, min_score: float = 0.0) -> tuple[tuple[Face, ...], int]:
    """The faces the policy sees, and how many candidates were "not a face" (see :class:`FrameAnalyzer`).

    Pure: threshold choices are evaluated offline by calling it on recorded candidates with other
    ``mask_threshold`` / ``min_score`` values (candidates above a score are the same whatever the
    detector's threshold was, since decoding, NMS and the same-person rule all go by score).
    """
    faces = []
    rejected = 0
    for c in cands:
        if c.score < min_score:
            continue
        if not_face_index is not None and int(np.argmax(c.probs)) == not_face_index:
            rejected += 1
            continue
        p_mask = float(c.probs[mask_index])
        masked = p_mask >= mask_threshold
        faces.append(Face(c.box, c.score, p_mask, "with_mask" if masked else "without_mask", masked))
    if len(faces) > 1:
        faces.sort(key=lambda f: (f.score >= other_face_score, f.area), reverse=True)
        faces = faces[:1] + [f for f in faces[1:] if f.score >= other_face_score]
    return tuple(faces), rejected


def _distinct_people(boxes: np.ndarray, scores: np.ndarray, overlap: float):
    """Boxes (best score first) that do not mostly lie on a better-scored box kept before them."""
    kept: list[np.ndarray] = []
    for box, score in zip(boxes, scores):
        area = (box[2] - box[0]) * (box[3] - box[1])
        same = False
        for k in kept:
            iw = min(box[2], k[2]) - max(box[0], k[0])
            ih = min(box[3], k[3]) - max(box[1], k[1])
            if iw > 0 and ih > 0:
                smaller = min(area, (k[2] - k[0]) * (k[3] - k[1]))
                if iw * ih >= overlap * smaller:
                    same = True
                    break
        if not same:
            kept.append(box)
            yield box, score
