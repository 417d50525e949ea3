"""Brightening dark doorway frames before inference (``detection.lowlight``).

Two classic options: a gamma curve (what the tutorials use) and CLAHE on the luminance (local
contrast, keeps bright areas from blowing out).  Each is a lookup table or one OpenCV call, applied
into a preallocated buffer.  Whether either helps is measured, not assumed:
``maskgate eval --lowlight`` on darkened copies of the encounters.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np


def gamma_enhancer(gamma: float = 0.6) -> Callable[[np.ndarray], np.ndarray]:
    """``out = 255 * (in / 255) ** gamma``; gamma < 1 brightens the shadows."""
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    out: dict[tuple, np.ndarray] = {}

    def apply(img: np.ndarray) -> np.ndarray:
        buf = out.get(img.shape)
        if buf is None:
            buf = out[img.shape] = np.empty_like(img)
        return cv2.LUT(img, lut, dst=buf)

    return apply


def clahe_enhancer(clip_limit: float = 2.0, tiles: int = 8) -> Callable[[np.ndarray], np.ndarray]:
    """CLAHE on the L channel of Lab, colours kept."""
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))

    def apply(img: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
        lab[:, :, 0] = clahe.apply(lab[:, :, 0])
        return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)

    return apply


def make_enhancer(mode: str) -> Callable[[np.ndarray], np.ndarray]:
    if mode == "gamma":
        return gamma_enhancer()
    if mode == "clahe":
        return clahe_enhancer()
    raise ValueError(f"unknown low-light mode {mode!r}")


def darken(img: np.ndarray, factor: float = 0.3, gamma: float = 1.6) -> np.ndarray:
    """A dusk version of a frame for evaluation: less light, crushed shadows, a little sensor noise."""
    x = (img.astype(np.float32) / 255.0) ** gamma * factor * 255.0
    rng = np.random.default_rng(int(img[::16, ::16].sum()) % (2**32))
    x += rng.normal(0, 2.0, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)
