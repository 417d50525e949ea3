"""Brightening dark doorway frames before inference (``detection.lowlight``).

Two classic options: a gamma curve (what the tutorials use) and CLAHE on the luminance (local
contrast, keeps bright areas from blowing out); ``auto`` applies the gamma curve to dark frames
only (mean grey level below :data:`DARK_BELOW`) and leaves the others untouched.  Each is a lookup
table or one OpenCV call, applied into a preallocated buffer.  Whether any of them helps is
measured, not assumed: ``maskgate eval --lowlight`` on darkened copies of the encounters
(docs/lowlight.md).
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


#: ``auto`` brightens a frame only when its mean grey level is below this (0..255).  Darkened
#: encounter frames (:func:`darken`) are all below 59; 95% of the original ones are above 60.
DARK_BELOW = 60.0


def mean_brightness(img: np.ndarray) -> float:
    """Mean grey level (0..255) of a BGR frame, from every 8th pixel of every 8th row (cheap)."""
    sample = np.ascontiguousarray(img[::8, ::8])
    return float(cv2.cvtColor(sample, cv2.COLOR_BGR2GRAY).mean())


def dark_only(enhance: Callable[[np.ndarray], np.ndarray], below: float = DARK_BELOW) -> Callable[[np.ndarray], np.ndarray]:
    """``enhance`` for frames darker than ``below``; brighter frames pass unchanged (the same array)."""

    def apply(img: np.ndarray) -> np.ndarray:
        return enhance(img) if mean_brightness(img) < below else img

    return apply


def make_enhancer(mode: str) -> Callable[[np.ndarray], np.ndarray]:
    if mode == "gamma":
        return gamma_enhancer()
    if mode == "clahe":
        return clahe_enhancer()
    if mode == "auto":
        return dark_only(gamma_enhancer())
    raise ValueError(f"unknown low-light mode {mode!r}")


def darken(img: np.ndarray, factor: float = 0.3, gamma: float = 1.6) -> np.ndarray:
    """A dusk version of a frame for evaluation: less light, crushed shadows, a little sensor noise."""
    x = (img.astype(np.float32) / 255.0) ** gamma * factor * 255.0
    rng = np.random.default_rng(int(img[::16, ::16].sum()) % (2**32))
    x += rng.normal(0, 2.0, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def grayscale(img: np.ndarray) -> np.ndarray:
    """A frame without colour, as a Pi NoIR / IR camera delivers at night (still three BGR channels)."""
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
