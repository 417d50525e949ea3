"""Small faces in crowds: the face detector run on the whole frame and on overlapping tiles.

The res10 detector sees a frame shrunk to its input (300x300); a face that ends up much smaller
than ~20 px there is not found.  Run on a ``grid`` x ``grid`` of overlapping tiles as well, each tile
is enlarged ``grid`` times, and faces a crowd photo holds by the dozen become findable.  The boxes
of all runs are merged: a box cut by a tile's inner edge is dropped (the overlap shows the face
whole in a neighbouring tile), then overlapping boxes are reduced to the best one.

:class:`TiledDetector` also drops large boxes the detector is unsure of (see :data:`LARGE_FRACTION`).
It has the detector's ``detect`` interface, so :class:`~maskgate.edge.analysis.FrameAnalyzer`
uses it unchanged.  It costs ``1 + grid**2`` detector runs per frame: for ``maskgate annotate`` and a
hall monitor, never for the door (one large face).
"""

from __future__ import annotations

import numpy as np

from maskgate.edge.detector import FaceDetector
from maskgate.edge.ssd import iou_one_to_many


def tile_origins(length: int, grid: int, overlap: float) -> list[tuple[int, int]]:
    """(start, end) of ``grid`` tiles along an axis of ``length`` pixels, neighbours overlapping by ``overlap`` of a tile."""
    if grid <= 1:
        return [(0, length)]
    size = length / (grid - (grid - 1) * overlap)
    step = size * (1 - overlap)
    return [(int(round(i * step)), min(length, int(round(i * step + size)))) for i in range(grid)]


def merge_boxes(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, contain: float = 0.7
                ) -> tuple[np.ndarray, np.ndarray]:
    """Best-first: a box is dropped if it overlaps a kept one by IoU > ``iou_threshold`` or lies
    mostly (``contain`` of its area) inside it."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    keep: list[int] = []
    for i in range(len(boxes)):
        b = boxes[i]
        if keep:
            kept = boxes[keep]
            if (iou_one_to_many(b, kept) > iou_threshold).any():
                continue
            ix = np.clip(np.minimum(b[2], kept[:, 2]) - np.maximum(b[0], kept[:, 0]), 0, None)
            iy = np.clip(np.minimum(b[3], kept[:, 3]) - np.maximum(b[1], kept[:, 1]), 0, None)
            area = max((b[2] - b[0]) * (b[3] - b[1]), 1e-6)
            if (ix * iy / area > contain).any():
                continue
        keep.append(i)
    return boxes[keep].reshape(-1, 4), scores[keep]


#: A box wider than this fraction of the frame must score at least :data:`LARGE_MIN_SCORE`.  At low
#: scores res10's largest priors fire on shoulders and clothes; on ../shared/data/wild (every 4th
#: photo, threshold 0.1) no detection that wide below 0.5 was a face (0 of 8), while 37 of 38 above were.
LARGE_FRACTION = 0.3
LARGE_MIN_SCORE = 0.5


class TiledDetector:
    """A :class:`FaceDetector` run on the frame and on ``grid`` x ``grid`` overlapping tiles (``grid`` 1:
    the frame only); boxes wider than :data:`LARGE_FRACTION` of the frame need :data:`LARGE_MIN_SCORE`."""

    def __init__(self, detector: FaceDetector, grid: int = 2, overlap: float = 0.25):
        self.detector = detector
        self.grid = grid
        self.overlap = overlap

    @property
    def score_threshold(self) -> float:
        return self.detector.score_threshold

    def detect(self, frame: np.ndarray, score_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self._detect(frame, score_threshold)
        h, w = frame.shape[:2]
        ok = ((boxes[:, 2] - boxes[:, 0]) <= LARGE_FRACTION * w) | (scores >= LARGE_MIN_SCORE)
        return boxes[ok], scores[ok]

    def _detect(self, frame: np.ndarray, score_threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.detector.detect(frame, score_threshold)
        if self.grid <= 1:
            return boxes, scores
        all_boxes, all_scores = [boxes], [scores]
        h, w = frame.shape[:2]
        for y0, y1 in tile_origins(h, self.grid, self.overlap):
            for x0, x1 in tile_origins(w, self.grid, self.overlap):
                b, s = self.detector.detect(frame[y0:y1, x0:x1], score_threshold)
                if not len(b):
                    continue
                # a box touching an inner edge of the tile is a face cut in two: the overlap has it whole
                cut = ((b[:, 0] <= 1) & (x0 > 0)) | ((b[:, 1] <= 1) & (y0 > 0)) \
                    | ((b[:, 2] >= x1 - x0 - 1) & (x1 < w)) | ((b[:, 3] >= y1 - y0 - 1) & (y1 < h))
                b = b[~cut] + np.array([x0, y0, x0, y0], np.float32)
                all_boxes.append(b)
                all_scores.append(s[~cut])
        return merge_boxes(np.concatenate(all_boxes), np.concatenate(all_scores),
                           self.detector.decoder.nms_threshold)
