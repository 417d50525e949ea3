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

    A detection becomes a :class:`Face` when it is at least ``min_face`` pixels wide and the
    classifier does not call it "not a face" (its most likely label).  ``mask_threshold`` decides
    ``masked``; below it the face counts as unmasked, whatever the argmax says.
    """

    def __init__(self, detector: FaceDetector, classifier: MaskClassifier, *, min_face: int, mask_threshold: float):
        self.detector = detector
        self.classifier = classifier
        self.min_face = min_face
        self.mask_threshold = mask_threshold

    def analyse(self, frame: np.ndarray) -> FrameResult:
        t0 = time.perf_counter()
        boxes, scores = self.detector.detect(frame)
        faces = []
        rejected = 0
        if len(boxes):
            wide = (boxes[:, 2] - boxes[:, 0]) >= self.min_face
            clf = self.classifier
            for box, score in zip(boxes[wide], scores[wide]):
                probs = clf.classify(frame, box)
                if clf.not_face_index is not None and int(np.argmax(probs)) == clf.not_face_index:
                    rejected += 1
                    continue
                p_mask = float(probs[clf.mask_index])
                masked = p_mask >= self.mask_threshold
                b = tuple(int(round(v)) for v in box)
                faces.append(Face(b, float(score), p_mask, "with_mask" if masked else "without_mask", masked))
        faces.sort(key=lambda f: f.area, reverse=True)
        return FrameResult(tuple(faces), (time.perf_counter() - t0) * 1000.0, rejected)
