"""Synthetic hard negatives: what they change, what they leave alone, and their labels."""

from __future__ import annotations

import numpy as np
import pytest

from maskgate.models import synthetic
from maskgate.models.classifier_data import CONTEXT_SIZE, MASK, NO_MASK, NOT_FACE


def _faces(n: int, seed: int = 0) -> np.ndarray:
    """Textured context crops (noise over a gradient): any painted region shows as lost texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CONTEXT_SIZE, 0:CONTEXT_SIZE]
    base = np.stack([xx, yy, (xx + yy) // 2], -1) * 200 // CONTEXT_SIZE
    return np.clip(base[None] + rng.integers(0, 50, (n, CONTEXT_SIZE, CONTEXT_SIZE, 3)), 0, 255).astype(np.uint8)


def _rows(f: float) -> int:
    return int(synthetic._box_y(f))


@pytest.mark.parametrize("maker", [synthetic.below_nose, synthetic.hand])
def test_lower_face_cover_leaves_eyes_and_nose_and_covers_the_mouth(maker):
    rng = np.random.default_rng(4)
    for c in _faces(20):
        before = c.copy()
        maker(c, rng)
        # down to the nose tip (0.6 of the box) nothing changes: a visible nose is what makes it not a mask
        np.testing.assert_array_equal(c[:_rows(0.55)], before[:_rows(0.55)])
        mouth = (slice(_rows(0.76), _rows(0.84)), slice(_rows(0.4), _rows(0.6)))
        assert np.abs(c[mouth].astype(int) - before[mouth]).mean() > 5
        # the cover is smoother than the face it hides
        assert c[mouth].astype(float).std(axis=(0, 1)).mean() < before[mouth].astype(float).std(axis=(0, 1)).mean()


def test_below_nose_band_starts_under_the_nose():
    rng = np.random.default_rng(1)
    tops = []
    for c in _faces(30):
        before = c.copy()
        synthetic.below_nose(c, rng)
        centre = np.abs(c[:, CONTEXT_SIZE // 2].astype(int) - before[:, CONTEXT_SIZE // 2]).sum(axis=1)
        tops.append(np.flatnonzero(centre > 30)[0])
    lo, hi = (synthetic._box_y(f) for f in synthetic.BAND_TOP)
    assert lo - 1 <= min(tops) and max(tops) <= hi + 1
    assert max(tops) - min(tops) > 3  # drawn, not fixed


def test_flat_surface_has_no_face_texture():
    c = _faces(1)[0]
    synthetic.flat(c, np.random.default_rng(2))
    # neighbouring pixels differ by little more than the sensor noise (a pole's two edges aside)
    assert np.median(np.abs(np.diff(c.astype(int), axis=0))) <= 4


def test_only_bare_faces_change_and_smooth_surfaces_become_not_a_face():
    ctx = _faces(300, seed=3)
    labels = np.array([MASK, NO_MASK, NOT_FACE, -1] * 75)
    out = ctx.copy()
    new = synthetic.synthetic_negatives(out, labels, np.random.default_rng(0), share=0.5)
    changed = np.flatnonzero(np.any(out != ctx, axis=(1, 2, 3)))
    assert set(labels[changed]) == {NO_MASK}
    assert 0.3 < len(changed) / 75 < 0.7
    flat = changed[new[changed] == NOT_FACE]
    assert 0 < len(flat) < len(changed)  # some flat, some below the nose or hands
    assert np.all(new[np.setdiff1d(np.arange(300), flat)] == labels[np.setdiff1d(np.arange(300), flat)])


def test_training_batches_with_synthetic_negatives_change_only_bare_faces():
    """With synthetic > 0 every other example is exactly the batch a run without them draws."""
    from maskgate.models._tf import import_keras
    from maskgate.models.train import _batches

    keras = import_keras()
    n = 64
    ctx = _faces(n, seed=5)
    cls = np.array([MASK, NO_MASK] * (n // 2))
    onehot = np.eye(3, dtype=np.float32)[cls]
    bare = cls == NO_MASK

    def order(epoch):
        return np.arange(n)

    plain = _batches(keras, ctx, onehot, order, n, 96, 0, 0.2)[0]
    hard = _batches(keras, ctx, onehot, order, n, 96, 0, 0.2, synthetic=1.0, bare=bare)[0]
    np.testing.assert_array_equal(hard[0][~bare], plain[0][~bare])
    np.testing.assert_array_equal(hard[1][~bare], plain[1][~bare])
    assert np.any(hard[0][bare] != plain[0][bare], axis=(1, 2, 3)).all()
    became_not_face = hard[1][bare].argmax(axis=1) == NOT_FACE
    assert 0 < became_not_face.sum() < bare.sum()
    assert np.all(hard[1][bare][~became_not_face].argmax(axis=1) == NO_MASK)
