"""The batched training augmentation: the device's crop at zero strength, seeded, grey stays grey."""

from __future__ import annotations

import numpy as np
import pytest

from maskgate.models import augment
from maskgate.models.classifier_data import CONTEXT_SIZE, device_crop_from_context


def _contexts(n: int, seed: int = 0) -> np.ndarray:
    """Context crops with structure (gradients and a bright square) so that a wrong warp shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CONTEXT_SIZE, 0:CONTEXT_SIZE]
    out = np.empty((n, CONTEXT_SIZE, CONTEXT_SIZE, 3), np.uint8)
    for i in range(n):
        img = np.stack([xx * 255 // CONTEXT_SIZE, yy * 255 // CONTEXT_SIZE, (xx + yy) * 127 // CONTEXT_SIZE], -1)
        x, y = rng.integers(30, 90, 2)
        img[y:y + 20, x:x + 30] = 250
        out[i] = img
    return out


@pytest.mark.parametrize("size", [96, 112])
def test_zero_strength_warp_is_the_device_crop_or_its_mirror_image(size):
    ctx = _contexts(12)
    warped = augment.geometric_batch(ctx, np.random.default_rng(3), size, strength=0.0)
    mirrored = 0
    for w, c in zip(warped, ctx):
        crop = device_crop_from_context(c, size)
        same = np.abs(w.astype(int) - crop).max()
        flipped = np.abs(w[:, ::-1].astype(int) - crop).max()
        assert min(same, flipped) <= 1, (same, flipped)
        mirrored += flipped < same
    assert 0 < mirrored < len(ctx)  # about half are mirrored


def test_augmentation_is_seeded_and_varies():
    ctx = _contexts(32)
    a = augment.augment_batch(ctx, np.random.default_rng((7, 0, 1)), 96)
    b = augment.augment_batch(ctx, np.random.default_rng((7, 0, 1)), 96)
    c = augment.augment_batch(ctx, np.random.default_rng((7, 0, 2)), 96)
    assert a.shape == (32, 96, 96, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 5


def test_grayscale_examples_stay_grey_with_noise(monkeypatch):
    # every example grayscale and noisy, nothing that mixes channels afterwards except JPEG
    for name, p in (("P_GRAYSCALE", 1.0), ("P_NOISE", 1.0), ("P_JPEG", 0.0), ("P_WHITE_BALANCE", 0.0)):
        monkeypatch.setattr(augment, name, p)
    out = augment.photometric_batch(_contexts(8)[:, :96, :96], np.random.default_rng(0))
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    monkeypatch.setattr(augment, "P_GRAYSCALE", 0.0)
    colour = augment.photometric_batch(_contexts(8)[:, :96, :96], np.random.default_rng(0))
    assert (colour[..., 0] != colour[..., 1]).any()


def test_the_share_without_colour_is_the_recipes():
    # recipe v2-g40 shows twice as many colourless examples as v2; the draw's stream is the same
    def colourless(p):
        out = augment.photometric_batch(_contexts(400)[:, :96, :96], np.random.default_rng(5), p_grayscale=p)
        return float(np.mean([(o[..., 0] == o[..., 1]).all() and (o[..., 1] == o[..., 2]).all() for o in out]))

    assert colourless(0.0) == 0.0 and colourless(1.0) == 1.0
    assert 0.13 < colourless(0.2) < 0.27 and 0.33 < colourless(0.4) < 0.47
    # the default is P_GRAYSCALE, so the committed recipe draws exactly what it drew before the setting
    np.testing.assert_array_equal(augment.photometric_batch(_contexts(8)[:, :96, :96], np.random.default_rng(1)),
                                  augment.photometric_batch(_contexts(8)[:, :96, :96], np.random.default_rng(1),
                                                            p_grayscale=augment.P_GRAYSCALE))


def test_an_ensembles_members_keep_its_share_without_colour():
    from maskgate.models.ensemble import member_settings
    from maskgate.models.train import recipe_settings

    assert recipe_settings("v2").grayscale == augment.P_GRAYSCALE
    assert member_settings(recipe_settings("v2x2-g40", seed=1), 3) == recipe_settings("v2-g40", seed=3)
