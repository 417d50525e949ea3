"""SSD post-processing for OpenCV's res10 face detector, in numpy.

OpenCV's graph ends in two layers that only OpenCV implements: ``PriorBox`` (one per head) and
``DetectionOutput`` (CENTER_SIZE box decoding with variances, per-class NMS, top-k).  This module
implements both once; the float Keras model, the int8 TFLite model on the device and every
evaluation go through the same functions, so a difference between float and int8 can only come
from the network itself.

Conventions follow OpenCV (``prior_box_layer.cpp``, ``detection_output_layer.cpp``):

* priors are ``[xmin, ymin, xmax, ymax]`` normalised by the network input width and height; they are
  not clipped (``clip: false`` in the graph), so the last heads, whose fixed steps (100, 300) were
  meant for 3x3 and 1x1 maps, place some priors outside the image, exactly as cv2.dnn does;
* per cell, the boxes are: the ``min_size`` square, the ``sqrt(min_size*max_size)`` square, then one
  box per aspect ratio and (``flip``) its inverse;
* location deltas are ``[dx, dy, dw, dh]`` decoded against the prior with variances
  ``0.1, 0.1, 0.2, 0.2``;
* NMS is greedy over candidates sorted by score (stable), keeping a box when its IoU with every kept
  box is at most the threshold; IoU uses normalised areas (no ``+1``).

Everything here is pure and allocation-light; the per-frame path calls :meth:`SSDDecoder.decode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt

import numpy as np


@dataclass(frozen=True)
class PriorSpec:
    """One ``PriorBox`` layer of the graph: its sizes in input pixels, aspect ratios and step."""

    min_size: float
    max_size: float
    aspect_ratios: tuple[float, ...]
    step: float
    offset: float = 0.5
    flip: bool = True

    def box_sizes(self) -> list[tuple[float, float]]:
        """(width, height) of each prior of one cell, in OpenCV's order."""
        sizes = [(self.min_size, self.min_size)]
        if self.max_size:
            s = sqrt(self.min_size * self.max_size)
            sizes.append((s, s))
        for ar in self.aspect_ratios:
            for r in ((ar, 1.0 / ar) if self.flip else (ar,)):
                sizes.append((self.min_size * sqrt(r), self.min_size / sqrt(r)))
        return sizes

    @property
    def boxes_per_cell(self) -> int:
        return len(self.box_sizes())


#: The six heads of res10_300x300_ssd as exported for OpenCV (``opencv_face_detector.pbtxt``):
#: conv4_3_norm, fc7 (last_relu), conv6_2, conv7_2, conv8_2, conv9_2.
RES10_PRIORS: tuple[PriorSpec, ...] = (
    PriorSpec(30, 60, (2.0,), 8),
    PriorSpec(60, 111, (2.0, 3.0), 16),
    PriorSpec(111, 162, (2.0, 3.0), 32),
    PriorSpec(162, 213, (2.0, 3.0), 64),
    PriorSpec(213, 264, (2.0,), 100),
    PriorSpec(264, 315, (2.0,), 300),
)

#: CENTER_SIZE variances of the graph's PriorBox layers.
RES10_VARIANCES = (0.1, 0.1, 0.2, 0.2)


def res10_feature_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """(rows, cols) of the six heads' feature maps for a ``width`` x ``height`` input.

    Follows the graph's strides and paddings: conv1 (7x7/2 with 3 px padding), max-pool 3x3/2 SAME,
    layer_128 (/2 SAME) → conv4_3 head; layer_256 (3x3/2 with 1 px padding) and layer_512 (/1) → fc7
    head; conv6_2 (/2 SAME); conv7_2 (3x3/2 with 1 px padding); conv8_2 and conv9_2 (/1 SAME, so they
    keep conv7_2's size in this export, unlike the Caffe original's 3x3 and 1x1 maps).
    """

    def axis(n: int) -> list[int]:
        n = (n + 6 - 7) // 2 + 1  # conv1_h: pad 3, 7x7, stride 2, VALID
        n = -(-n // 2)  # conv1_pool: SAME, stride 2
        c4 = -(-n // 2)  # layer_128_1: SAME, stride 2
        fc7 = (c4 + 2 - 3) // 2 + 1  # layer_256_1_conv1: pad 1, 3x3, stride 2, VALID; layer_512: stride 1
        c6 = -(-fc7 // 2)  # conv6_2_h: SAME, stride 2
        c7 = (c6 + 2 - 3) // 2 + 1  # conv7_2_h: pad 1, 3x3, stride 2, VALID
        return [c4, fc7, c6, c7, c7, c7]

    if width < 32 or height < 32:
        raise ValueError(f"detector input {width}x{height} is too small (at least 32x32)")
    return list(zip(axis(height), axis(width)))


def make_priors(
    width: int,
    height: int,
    feature_sizes: list[tuple[int, int]] | None = None,
    specs: tuple[PriorSpec, ...] = RES10_PRIORS,
) -> np.ndarray:
    """All priors of the network for one input size, ``(N, 4)`` float32 ``[xmin, ymin, xmax, ymax]``.

    Cell-major within each head (rows, then columns, then the boxes of a cell), heads in order: the
    same order as the graph's flattened ``mbox_loc`` / ``mbox_conf`` outputs.
    """
    if feature_sizes is None:
        feature_sizes = res10_feature_sizes(width, height)
    if len(feature_sizes) != len(specs):
        raise ValueError(f"{len(feature_sizes)} feature maps for {len(specs)} prior layers")
    out = []
    for (rows, cols), spec in zip(feature_sizes, specs):
        sizes = np.asarray(spec.box_sizes(), dtype=np.float32)  # (A, 2) as (w, h)
        cy, cx = np.meshgrid(
            (np.arange(rows, dtype=np.float32) + spec.offset) * spec.step,
            (np.arange(cols, dtype=np.float32) + spec.offset) * spec.step,
            indexing="ij",
        )
        cx = cx.reshape(-1, 1)
        cy = cy.reshape(-1, 1)
        half_w = sizes[None, :, 0] / 2
        half_h = sizes[None, :, 1] / 2
        boxes = np.stack(
            [(cx - half_w) / width, (cy - half_h) / height, (cx + half_w) / width, (cy + half_h) / height],
            axis=-1,
        )
        out.append(boxes.reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[x1, y1, x2, y2]`` box with each row of ``boxes`` (normalised areas, no +1)."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, top_k: int) -> np.ndarray:
    """Indices kept by greedy NMS over ``boxes`` already sorted by descending ``scores``.

    A candidate survives when its IoU with every box kept so far is ``<= iou_threshold``.  At most
    ``top_k`` indices are returned.
    """
    keep: list[int] = []
    n = len(boxes)
    suppressed = np.zeros(n, dtype=bool)
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) >= top_k or i + 1 == n:
            break
        rest = boxes[i + 1 :]
        suppressed[i + 1 :] |= iou_one_to_many(boxes[i], rest) > iou_threshold
    return np.asarray(keep, dtype=np.intp)


class SSDDecoder:
    """Turns the network's raw ``loc`` and ``conf`` outputs into scored face boxes.

    Priors are computed once for the input size.  :meth:`decode` only touches priors whose face
    score passes ``score_threshold``, so a frame with no face costs one comparison over the scores.

    ``top_k`` bounds the candidates before NMS and ``keep_top_k`` the detections after it; the
    defaults are the graph's (400 and 200).  Because NMS is greedy from the highest score down, the
    detections above any threshold are the same whether weaker candidates were dropped before NMS
    or after it; the gate therefore decodes at its own threshold, and parity checks at the graph's.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        variances: tuple[float, float, float, float] = RES10_VARIANCES,
        nms_threshold: float = 0.45,
        top_k: int = 400,
        keep_top_k: int = 200,
        feature_sizes: list[tuple[int, int]] | None = None,
    ):
        self.width = width
        self.height = height
        self.priors = make_priors(width, height, feature_sizes)
        p = self.priors
        self._prior_wh = np.stack([p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]], axis=1)
        self._prior_c = np.stack([(p[:, 0] + p[:, 2]) / 2, (p[:, 1] + p[:, 3]) / 2], axis=1)
        self._var = np.asarray(variances, dtype=np.float32)
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.keep_top_k = keep_top_k

    @property
    def num_priors(self) -> int:
        return len(self.priors)

    def decode_boxes(self, loc: np.ndarray, index: np.ndarray, loc_scale: float | None = None,
                     loc_zero_point: int = 0) -> np.ndarray:
        """CENTER_SIZE decoding of the priors at ``index``: ``(len(index), 4)`` ``[x1, y1, x2, y2]``.

        ``loc`` may be the int8 output of a quantized model, with its ``loc_scale`` and ``loc_zero_point``;
        only the rows at ``index`` are dequantized.
        """
        d = loc[index].astype(np.float32)
        if loc_scale is not None:
            d -= loc_zero_point
            d *= loc_scale
        wh = self._prior_wh[index]
        c = self._prior_c[index] + d[:, :2] * self._var[:2] * wh
        half = np.exp(d[:, 2:] * self._var[2:]) * wh / 2
        return np.concatenate([c - half, c + half], axis=1)

    def decode(self, loc: np.ndarray, face_scores: np.ndarray, score_threshold: float, *,
               loc_scale: float | None = None, loc_zero_point: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Detections above ``score_threshold`` after NMS, best first.

        ``loc`` is ``(N, 4)`` (float, or int8 with ``loc_scale``/``loc_zero_point``) and ``face_scores``
        ``(N,)`` (the softmax probability of the face class), both in prior order.  Returns
        ``(boxes (K, 4), scores (K,))`` with boxes normalised to the network input, unclipped, as cv2.dnn
        reports them.
        """
        if loc.shape != (self.num_priors, 4) or face_scores.shape != (self.num_priors,):
            raise ValueError(
                f"detector outputs {loc.shape} and {face_scores.shape} do not match "
                f"{self.num_priors} priors of a {self.width}x{self.height} input"
            )
        cand = np.flatnonzero(face_scores > score_threshold)
        if cand.size == 0:
            return np.empty((0, 4), np.float32), np.empty((0,), np.float32)
        order = np.argsort(-face_scores[cand], kind="stable")[: self.top_k]
        cand = cand[order]
        scores = face_scores[cand].astype(np.float32, copy=False)
        boxes = self.decode_boxes(loc, cand, loc_scale, loc_zero_point)
        keep = greedy_nms(boxes, scores, self.nms_threshold, self.keep_top_k)
        return boxes[keep], scores[keep]
