"""Synthetic hard negatives for the classifier: the must-stay-locked cases that hold the door's p_mask up.

What sets ``p_mask`` with the committed models (README, "What bounds p_mask") is a handful of
must-stay-locked crops that look like a mask to the classifier: a mask worn below the nose, a hand
over a bare mouth, and a box the detector puts on sky (a smooth patch is what the lower half of a
masked face looks like).  Real examples of these are few, so a share of the bare faces each batch
draws is turned into one of them, made on the stored context crop before the geometric warp (so the
change moves with the face) and before the appearance changes (so it is also shown without colour):

- **below the nose**: a smooth band of one colour over the mouth and chin, its top edge under the
  nose tip — labelled without a mask, as the gate must treat it;
- **hand**: a patch of the same face's own skin (its forehead) over the mouth — without a mask;
- **flat**: a smooth gradient between two colours with low-frequency shading and sometimes a thin
  pole across it (sky beside a lamp post, a wall) replacing the whole crop — not a face.

Geometry: a context crop (``CONTEXT_SIZE`` square) holds the detector's box in its central
``1 / (1 + 2 * CONTEXT_MARGIN)``; for res10's boxes the nose tip lies at about 0.6 of the box's
height and the mouth at about 0.75, a mask worn properly starts at about 0.45.  The band's top is
drawn from 0.63-0.74, well clear of a proper mask's edge, so that no synthetic "below the nose"
example is a properly worn mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskgate.models.classifier_data import CONTEXT_MARGIN, CONTEXT_SIZE, NO_MASK, NOT_FACE

KINDS = ("below_nose", "hand", "flat")
#: how a chosen bare face is changed (probabilities of :data:`KINDS`)
KIND_P = (0.4, 0.3, 0.3)
#: the band's top edge, as a fraction of the face box's height from its top
BAND_TOP = (0.63, 0.74)

_BOX = CONTEXT_SIZE / (1 + 2 * CONTEXT_MARGIN)  # side of the detector's box inside a context crop
_OFF = (CONTEXT_SIZE - _BOX) / 2  # where the box starts


def _box_y(f: float) -> float:
    return _OFF + f * _BOX


def _soft_ellipse(shape: tuple[int, int], cx: float, cy: float, ax: float, ay: float, edge: float) -> np.ndarray:
    """An alpha map (H, W) float32: 1 inside the ellipse, falling to 0 over ``edge`` (relative) outside it."""
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    r = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)
    return np.clip((1 + edge - r) / edge, 0, 1)


def _smooth_field(rng: np.random.Generator, size: int, cells: int = 4) -> np.ndarray:
    """Low-frequency shading (size, size) in about [-1, 1]: a few random values, upscaled smoothly."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def below_nose(ctx: np.ndarray, rng: np.random.Generator) -> None:
    """Paint a one-coloured band over the mouth and chin of context crop ``ctx`` (in place)."""
    s = ctx.shape[0]
    top = _box_y(rng.uniform(*BAND_TOP))
    bottom = _box_y(rng.uniform(0.98, 1.1))
    cx = s / 2 + rng.uniform(-0.05, 0.05) * _BOX
    half_w = rng.uniform(0.36, 0.48) * _BOX
    # an ellipse cut by a straight top edge: a mask pulled down under the nose
    cy, half_h = top + 0.4 * (bottom - top), 0.75 * (bottom - top)
    alpha = _soft_ellipse((s, s), cx, cy, half_w, half_h, 0.08)
    alpha[: int(np.ceil(top))] = 0
    if rng.random() < 0.5:  # a light mask (white, pale blue) or any colour
        colour = rng.uniform(170, 250, 3) * np.array([1.0, 1.0, rng.uniform(0.9, 1.1)])
    else:
        colour = rng.uniform(10, 230, 3)
    shade = 1 + 0.12 * _smooth_field(rng, s)[..., None]  # folds and light across the fabric
    band = np.clip(colour[None, None, :] * shade + rng.normal(0, 3, (s, s, 1)), 0, 255)
    a = alpha[..., None]
    ctx[:] = (ctx * (1 - a) + band * a).astype(np.uint8)


def hand(ctx: np.ndarray, rng: np.random.Generator) -> None:
    """Cover the mouth of context crop ``ctx`` with a patch of its own forehead's skin (in place)."""
    s = ctx.shape[0]
    y0, y1 = int(_box_y(0.02)), int(_box_y(0.22))
    x0, x1 = int(_box_y(0.25)), int(_box_y(0.75))
    skin = ctx[y0:y1, x0:x1]
    w = int(rng.uniform(0.5, 0.8) * _BOX)
    h = int(rng.uniform(0.26, 0.36) * _BOX)
    patch = cv2.resize(skin, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    # fingers: a few darker creases across the patch, a hand held flat or slanted
    creases = 1 - 0.18 * np.maximum(0, np.sin(np.linspace(0, np.pi * rng.integers(3, 6), h)))[:, None, None]
    patch *= creases
    cx = s / 2 + rng.uniform(-0.1, 0.1) * _BOX
    cy = _box_y(rng.uniform(0.76, 0.86))  # its top stays under the nose tip
    full = np.zeros((s, s, 3), np.float32)
    px, py = int(cx - w / 2), int(cy - h / 2)
    ys, xs = slice(max(py, 0), min(py + h, s)), slice(max(px, 0), min(px + w, s))
    full[ys, xs] = patch[ys.start - py: ys.stop - py, xs.start - px: xs.stop - px]
    alpha = _soft_ellipse((s, s), cx, cy, w / 2, h / 2, 0.15)
    alpha[:ys.start], alpha[ys.stop:], alpha[:, :xs.start], alpha[:, xs.stop:] = 0, 0, 0, 0
    a = alpha[..., None]
    ctx[:] = (ctx * (1 - a) + full * a).astype(np.uint8)


def flat(ctx: np.ndarray, rng: np.random.Generator) -> None:
    """Replace context crop ``ctx`` with a smooth surface: sky, a wall, sometimes a pole across it (in place)."""
    s = ctx.shape[0]
    # sky, walls, doors: a grey level with a tint, not a saturated colour
    c0 = rng.uniform(50, 245) + rng.uniform(-25, 25, 3)
    c1 = np.clip(c0 + rng.uniform(-60, 60), 0, 255) + rng.uniform(-15, 15, 3)
    t = np.linspace(0, 1, s, dtype=np.float32)[:, None, None]
    img = c0 * (1 - t) + c1 * t
    if rng.random() < 0.5:
        img = img.transpose(1, 0, 2)
    img = img * (1 + 0.1 * _smooth_field(rng, s)[..., None]) + rng.normal(0, 2.5, (s, s, 1))
    if rng.random() < 0.5:  # a lamp post or a door frame
        x = int(rng.uniform(0.1, 0.9) * s)
        w = int(rng.integers(2, 12))
        img[:, x:x + w] = rng.uniform(10, 120)
    ctx[:] = np.clip(img, 0, 255).astype(np.uint8)


_MAKERS = {"below_nose": below_nose, "hand": hand, "flat": flat}


def synthetic_negatives(ctx: np.ndarray, labels: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """Turn about ``share`` of the bare faces in a batch into synthetic hard negatives.

    ``ctx`` (N, C, C, 3) is changed in place (pass a copy); ``labels`` are the class indices.  Returns
    the new class indices (``flat`` examples become not-a-face; the others stay without a mask).
    """
    labels = labels.copy()
    chosen = np.flatnonzero((labels == NO_MASK) & (rng.random(len(labels)) < share))
    kinds = rng.choice(len(KINDS), len(chosen), p=KIND_P)
    for i, k in zip(chosen, kinds):
        _MAKERS[KINDS[k]](ctx[i], rng)
        if KINDS[k] == "flat":
            labels[i] = NOT_FACE
    return labels
