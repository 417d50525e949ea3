"""Doorway framing: turn a face in any photo into the frame a doorway camera would see.

This is the protocol of ``../shared/data/encounters``: a 4:3 region around the face, the face about
40 % of the frame wide, grey (127) where the region leaves the photo, scaled to 640x480.  Training
uses it to show the classifier faces as the gate sees them; evaluation uses it to make face-free
frames (objects, empty doorways) from the same photos.
"""

from __future__ import annotations

import cv2
import numpy as np

FRAME_SIZE = (640, 480)
GREY = 127


def doorway_frame(image: np.ndarray, box, *, face_frac: float = 0.4, offset=(0.0, 0.0),
                  size: tuple[int, int] = FRAME_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``box`` (x1, y1, x2, y2 in ``image`` pixels) as a doorway camera would.

    ``face_frac`` is the box width as a fraction of the frame width; ``offset`` shifts the face from
    the centre by that fraction of the frame (x, y).  Returns the frame and every point mapping:
    the ``(2, 3)`` affine matrix from image to frame pixels.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    fw, fh = size
    bw = max(x2 - x1, 1.0)
    region_w = bw / face_frac
    scale = fw / region_w
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    # image point (cx, cy) lands at the frame centre, moved by the offset
    tx = fw / 2.0 + offset[0] * fw - scale * cx
    ty = fh / 2.0 + offset[1] * fh - scale * cy
    m = np.array([[scale, 0.0, tx], [0.0, scale, ty]], dtype=np.float64)
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    frame = cv2.warpAffine(image, m, (fw, fh), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=(GREY, GREY, GREY))
    return frame, m


def map_box(m: np.ndarray, box) -> np.ndarray:
    """``box`` through the affine ``m`` of :func:`doorway_frame` (a scale and a shift)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    s, tx, ty = m[0, 0], m[0, 2], m[1, 2]
    return np.array([x1 * s + tx, y1 * s + ty, x2 * s + tx, y2 * s + ty], dtype=np.float32)
