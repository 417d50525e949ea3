"""Augmentation of classifier examples: what varies at a doorway camera, a batch at a time.

Geometry (one warp from the stored context crop): jitter of the crop box (position and size — the
detector's box moves from frame to frame), small rotations, horizontal flip.  Appearance: brightness,
contrast and gamma (day, night, backlight), blur and low resolution (focus, motion, distance),
sensor noise, JPEG quality, white balance, and grayscale — a Pi NoIR / IR camera at night delivers
frames without colour, and an unmasked face in such a frame must still be refused.  Noise added to
a grayscale example is grey too: the camera adds it before the colour is gone, and coloured noise
on a colourless face is something the device never sees.

Why batches: training draws ~200,000 examples, and a Python function per example spent most of its
time in per-example numpy overhead.  Here every random draw and every pixel-wise step
is one numpy operation over the batch; only the OpenCV calls that have no batched form (the warp,
blur, down-scaling and JPEG, each a single C call) loop, and only over the examples they apply to.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskgate.models.classifier_data import CONTEXT_MARGIN, CONTEXT_SIZE, CROP_MARGIN

#: probability of each appearance change
P_WHITE_BALANCE = 0.2
P_LOW_RES = 0.2
P_BLUR = 0.3
P_GRAYSCALE = 0.2
P_GAMMA = 0.3
P_NOISE = 0.3
P_JPEG = 0.3


#: side of the device crop inside a context crop, in context pixels (whatever the classifier's input size)
BASE_SIDE = CONTEXT_SIZE * (1 + 2 * CROP_MARGIN) / (1 + 2 * CONTEXT_MARGIN)


def warp_matrices(n: int, rng: np.random.Generator, size: int, *, strength: float = 1.0) -> np.ndarray:
    """``(n, 2, 3)`` affine maps from context crop to a ``size`` crop: box jitter, rotation, mirror."""
    side0 = BASE_SIDE
    side = side0 * rng.uniform(1 - 0.15 * strength, 1 + 0.18 * strength, n)
    c = CONTEXT_SIZE / 2.0
    cx = c + rng.uniform(-0.08, 0.08, n) * strength * side0
    cy = c + rng.uniform(-0.08, 0.08, n) * strength * side0
    angle = np.deg2rad(rng.uniform(-12, 12, n) * strength)
    scale = size / side
    a, b = scale * np.cos(angle), scale * np.sin(angle)
    flip = np.where(rng.random(n) < 0.5, -1.0, 1.0)  # mirror about the output's vertical centre line
    m = np.empty((n, 2, 3))
    # out = R·S·(p - centre) + size/2, then mirrored for half of them
    t = -a * cx - b * cy + size / 2.0
    m[:, 0, 0], m[:, 0, 1] = flip * a, flip * b
    m[:, 1, 0], m[:, 1, 1] = -b, a
    m[:, 0, 2] = np.where(flip < 0, size - 1 - t, t)  # as cv2.flip mirrors: pixel i <-> size - 1 - i
    m[:, 1, 2] = b * cx - a * cy + size / 2.0
    return m


def geometric_batch(ctx: np.ndarray, rng: np.random.Generator, size: int, *, strength: float = 1.0) -> np.ndarray:
    """Warp each context crop of ``ctx`` (N, C, C, 3) to a jittered ``size`` crop."""
    m = warp_matrices(len(ctx), rng, size, strength=strength)
    out = np.empty((len(ctx), size, size, 3), np.uint8)
    area = np.hypot(m[:, 0, 0], m[:, 0, 1]) < 1 / 1.2  # shrinking by more than 1.2: area averaging
    for i in range(len(ctx)):
        cv2.warpAffine(ctx[i], m[i], (size, size), dst=out[i], flags=cv2.INTER_AREA if area[i] else cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return out


def _pick(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    return np.flatnonzero(rng.random(n) < p)


def photometric_batch(img: np.ndarray, rng: np.random.Generator, *, p_grayscale: float | None = None) -> np.ndarray:
    """Appearance changes of a uint8 batch (N, S, S, 3); returns a new uint8 batch.

    ``p_grayscale``: the share of examples without colour (a recipe setting, ``TrainSettings.grayscale``;
    default :data:`P_GRAYSCALE`).
    """
    n, size = len(img), img.shape[1]
    img = img.copy()
    for i in _pick(rng, n, P_LOW_RES):  # a face far away, or a small lores stream
        s = int(rng.integers(max(8, size * 20 // 96), max(9, size // 2)))
        small = cv2.resize(img[i], (s, s), interpolation=cv2.INTER_AREA)
        cv2.resize(small, (size, size), dst=img[i], interpolation=cv2.INTER_LINEAR)
    for i in _pick(rng, n, P_BLUR):
        cv2.GaussianBlur(img[i], (0, 0), float(rng.uniform(0.4, 1.6)), dst=img[i])
    x = img.astype(np.float32)
    wb = _pick(rng, n, P_WHITE_BALANCE)
    x[wb] *= rng.uniform(0.85, 1.15, (len(wb), 1, 1, 3)).astype(np.float32)
    # an IR camera at night: the device's own conversion's weights
    gray = _pick(rng, n, P_GRAYSCALE if p_grayscale is None else p_grayscale)
    if len(gray):
        g = x[gray] @ np.array([0.114, 0.587, 0.299], np.float32)
        x[gray] = g[..., None]
    contrast = rng.uniform(0.6, 1.4, (n, 1, 1, 1)).astype(np.float32)
    bright = rng.uniform(-40, 40, (n, 1, 1, 1)).astype(np.float32)
    x -= 128.0
    x *= contrast
    x += 128.0 + bright
    gam = _pick(rng, n, P_GAMMA)
    if len(gam):
        e = rng.uniform(0.6, 1.6, (len(gam), 1, 1, 1)).astype(np.float32)
        x[gam] = 255.0 * (np.clip(x[gam], 0, 255) / 255.0) ** e
    noisy = _pick(rng, n, P_NOISE)
    if len(noisy):
        sigma = rng.uniform(2, 10, (len(noisy), 1, 1, 1)).astype(np.float32)
        noise = rng.standard_normal((len(noisy), size, size, 3), dtype=np.float32) * sigma
        grey = np.isin(noisy, gray)
        noise[grey] = noise[grey, :, :, :1]  # grey noise on a grayscale example
        x[noisy] += noise
    out = np.clip(x, 0, 255, out=x).astype(np.uint8)
    for i in _pick(rng, n, P_JPEG):
        ok, enc = cv2.imencode(".jpg", out[i], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        out[i] = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    return out


def augment_batch(ctx: np.ndarray, rng: np.random.Generator, size: int, *,
                  p_grayscale: float | None = None) -> np.ndarray:
    """Training views (N, size, size, 3) uint8 of context crops (N, C, C, 3)."""
    return photometric_batch(geometric_batch(ctx, rng, size), rng, p_grayscale=p_grayscale)
