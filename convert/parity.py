"""Detector parity: our port and decoding against cv2.dnn, the reference implementation.

Two measurements, both on the photos of ``../shared/data/wild``:

* :func:`detection_parity` — every cv2.dnn detection above 0.5 must be matched by one of ours at
  IoU >= 0.9 with a score within 0.02 (float Keras model + :mod:`maskgate.edge.ssd`);
* :func:`face_recall` — the share of annotated faces of at least 60 px (the shorter side of the box, in
  the photo's pixels) found at IoU >= 0.5 by detections above a threshold, for cv2.dnn and for the int8
  model side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from maskgate.datasets import VocImage
from maskgate.edge.ssd import iou_one_to_many

Detect = Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]  # frame, threshold -> (boxes norm., scores)


class OpenCVReference:
    """cv2.dnn's res10 at a fixed input size: the reference detections."""

    def __init__(self, pb: Path, pbtxt: Path, width: int = 300, height: int = 300):
        # A fresh net per input size: OpenCV 5 reuses shapes from the first forward pass.
        self.net = cv2.dnn.readNetFromTensorflow(str(pb), str(pbtxt))
        self.width, self.height = width, height

    def __call__(self, frame: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        blob = cv2.dnn.blobFromImage(frame, 1.0, (self.width, self.height), (104.0, 177.0, 123.0), False, False)
        self.net.setInput(blob)
        out = self.net.forward().reshape(-1, 7)
        out = out[out[:, 2] > threshold]
        return out[:, 3:7].astype(np.float32), out[:, 2].astype(np.float32)


@dataclass
class ParityReport:
    images: int = 0
    reference_detections: int = 0
    matched: int = 0
    worst_iou: float = 1.0
    worst_score_diff: float = 0.0
    failures: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.matched == self.reference_detections

    def to_json(self) -> dict:
        return {
            "images": self.images, "reference_detections_above_0.5": self.reference_detections,
            "matched_iou_0.9_score_0.02": self.matched, "worst_iou": round(self.worst_iou, 6),
            "worst_score_diff": round(self.worst_score_diff, 6), "failures": self.failures[:10],
        }


def detection_parity(ours: Detect, reference: Detect, images: Sequence[Path], *, threshold: float = 0.5,
                     min_iou: float = 0.9, max_score_diff: float = 0.02) -> ParityReport:
    rep = ParityReport()
    for path in images:
        frame = cv2.imread(str(path))
        ref_boxes, ref_scores = reference(frame, threshold)
        # ours at a lower threshold, so a reference box at 0.501 can match ours at 0.499
        boxes, scores = ours(frame, max(threshold - max_score_diff, 0.01))
        rep.images += 1
        for rb, rs in zip(ref_boxes, ref_scores):
            rep.reference_detections += 1
            if len(boxes):
                ious = iou_one_to_many(rb, boxes)
                ok = (ious >= min_iou) & (np.abs(scores - rs) <= max_score_diff)
                if ok.any():
                    j = int(np.argmax(np.where(ok, ious, -1)))
                    rep.matched += 1
                    rep.worst_iou = min(rep.worst_iou, float(ious[j]))
                    rep.worst_score_diff = max(rep.worst_score_diff, float(abs(scores[j] - rs)))
                    continue
            rep.failures.append({"image": path.name, "box": [round(float(v), 4) for v in rb], "score": round(float(rs), 4)})
    return rep


def face_recall(detect: Detect, images: Sequence[VocImage], *, threshold: float = 0.5, min_size: int = 60,
                min_iou: float = 0.5) -> dict:
    """Recall on annotated faces whose shorter side is at least ``min_size`` px."""
    faces = found = 0
    for img in images:
        big = [o for o in img.objects if min(o.width, o.height) >= min_size]
        if not big:
            continue
        frame = cv2.imread(str(img.path))
        h, w = frame.shape[:2]
        boxes, _ = detect(frame, threshold)
        for o in big:
            faces += 1
            gt = np.array([o.box[0] / w, o.box[1] / h, o.box[2] / w, o.box[3] / h], np.float32)
            if len(boxes) and iou_one_to_many(gt, boxes).max() >= min_iou:
                found += 1
    return {"faces": faces, "found": found, "recall": round(found / faces, 4) if faces else None,
            "threshold": threshold, "min_size_px": min_size}
