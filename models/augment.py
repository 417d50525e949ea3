"""Augmentation of classifier examples: what varies at a doorway camera, in numpy/OpenCV.

Geometry (one warp from the stored context crop): jitter of the crop box (position and size — the
detector's box moves from frame to frame), small rotations, horizontal flip.  Appearance: brightness,
contrast and gamma (day, night, backlight), blur and low resolution (focus, motion, distance),
sensor noise, JPEG quality, white balance, and grayscale — a Pi NoIR / IR camera at night delivers
frames without colour, and an unmasked face in such a frame must still be refused.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskgate.models.classifier_data import CONTEXT_MARGIN, CONTEXT_SIZE, CROP_MARGIN, CROP_SIZE

#: side of the device crop inside a context crop, in context pixels
BASE_SIDE = CONTEXT_SIZE * (1 + 2 * CROP_MARGIN) / (1 + 2 * CONTEXT_MARGIN)


def geometric(ctx: np.ndarray, rng: np.random.Generator, *, strength: float = 1.0) -> np.ndarray:
    side = BASE_SIDE * rng.uniform(1 - 0.15 * strength, 1 + 0.18 * strength)
    c = CONTEXT_SIZE / 2.0
    cx = c + rng.uniform(-0.08, 0.08) * strength * BASE_SIDE
    cy = c + rng.uniform(-0.08, 0.08) * strength * BASE_SIDE
    angle = rng.uniform(-12, 12) * strength
    m = cv2.getRotationMatrix2D((cx, cy), angle, CROP_SIZE / side)
    m[0, 2] += CROP_SIZE / 2.0 - cx
    m[1, 2] += CROP_SIZE / 2.0 - cy
    interp = cv2.INTER_AREA if side > CROP_SIZE * 1.2 else cv2.INTER_LINEAR
    out = cv2.warpAffine(ctx, m, (CROP_SIZE, CROP_SIZE), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.5:
        out = cv2.flip(out, 1)
    return out


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.2:  # white balance
        img = np.clip(img.astype(np.float32) * rng.uniform(0.85, 1.15, size=3), 0, 255).astype(np.uint8)
    if rng.random() < 0.2:  # low resolution: a face far away, or a small lores stream
        s = int(rng.integers(20, 48))
        img = cv2.resize(cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA), (CROP_SIZE, CROP_SIZE),
                         interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.6))
    x = img.astype(np.float32)
    if rng.random() < 0.2:  # grayscale (IR camera at night)
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        x = np.repeat(g[:, :, None], 3, axis=2)
    contrast = rng.uniform(0.6, 1.4)
    bright = rng.uniform(-40, 40)
    x = (x - 128.0) * contrast + 128.0 + bright
    if rng.random() < 0.3:
        gamma = rng.uniform(0.6, 1.6)
        x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** gamma
    if rng.random() < 0.3:
        x += rng.normal(0, rng.uniform(2, 10), size=x.shape).astype(np.float32)
    img = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        img = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    return img


def augment(ctx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return photometric(geometric(ctx, rng), rng)
