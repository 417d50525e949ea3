"""Face crops for the mask classifier: one function, used by the device and by training alike.

The classifier must see faces exactly as the gate crops them, so training imports this module
instead of having its own crop code.  A crop is the square around the detected box's centre whose
side is the box's longer side plus ``margin`` of it on each side (so the mask's edges and the nose
are in view), resized to the classifier's input.  Parts of the square outside the frame are filled
by replicating the frame's border, which avoids hard artificial edges.
"""

from __future__ import annotations

import cv2
import numpy as np


def square_around(box, margin: float) -> tuple[int, int, int, int]:
    """The integer square ``(x1, y1, x2, y2)`` centred on ``box`` with the crop margin (may leave the frame)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    side = max(side, 2.0)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    sx1 = int(round(cx - side / 2.0))
    sy1 = int(round(cy - side / 2.0))
    s = int(round(side))
    return sx1, sy1, sx1 + s, sy1 + s


def face_crop(frame: np.ndarray, box, margin: float, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """The classifier's view of the face in ``box`` (frame pixel coordinates): ``(size, size, 3)`` uint8.

    ``out``, if given, receives the result (no allocation for the resized crop).
    """
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = square_around(box, margin)
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if cx2 <= cx1 or cy2 <= cy1:
        raise ValueError(f"face box {tuple(box)} lies outside the {w}x{h} frame")
    region = frame[cy1:cy2, cx1:cx2]
    pads = (cy1 - y1, y2 - cy2, cx1 - x1, x2 - cx2)
    if any(pads):
        region = cv2.copyMakeBorder(region, *pads, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if region.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), dst=out, interpolation=interp)
