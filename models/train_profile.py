"""Where a training step's time goes, measured side by side in one run (``maskgate train --profile``).

It times, on the same random batch: a step of the classifier with Keras' own batch norm, with the
fused batch norm training uses (:func:`maskgate.models.mask_classifier.fused_batch_norm`) and with
no batch norm at all (not a model we train: the bound on what normalization costs), and making one
batch of augmented examples.  Ratios, not absolute times, are what carry over to another machine.
"""

from __future__ import annotations

import time

import numpy as np


def _step_ms(model, x, y, repeats: int) -> float:
    for _ in range(3):
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(repeats):
        model.train_on_batch(x, y)
    return (time.perf_counter() - t) / repeats * 1000.0


def profile(batch_size: int = 64, size: int = 96, repeats: int = 10, seed: int = 0) -> dict:
    from maskgate.models import mask_classifier as mc
    from maskgate.models._tf import import_keras
    from maskgate.models.augment import augment_batch
    from maskgate.models.classifier_data import CONTEXT_SIZE

    keras = import_keras()
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch_size, size, size, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, batch_size)]
    out = {}
    variants = {"keras_batch_norm": keras.layers.BatchNormalization, "fused_batch_norm": mc.fused_batch_norm(),
                "no_batch_norm": None}
    for name, layer in variants.items():
        original = mc.fused_batch_norm
        if name != "fused_batch_norm":
            mc.fused_batch_norm = (lambda layer=layer: layer) if layer else (lambda: _identity(keras))
        try:
            model = mc.build_mask_classifier(size, 3, seed=seed)
        finally:
            mc.fused_batch_norm = original
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
        out[f"step_ms_{name}"] = round(_step_ms(model, x, y, repeats), 1)
    ctx = rng.integers(0, 256, (batch_size, CONTEXT_SIZE, CONTEXT_SIZE, 3), dtype=np.uint8)
    t = time.perf_counter()
    for i in range(repeats):
        augment_batch(ctx, np.random.default_rng((seed, i)), size)
    out["augment_ms_per_batch"] = round((time.perf_counter() - t) / repeats * 1000.0, 1)
    out["batch_size"] = batch_size
    base = out["step_ms_keras_batch_norm"]
    out["ratios_to_keras_batch_norm"] = {k: round(v / base, 2) for k, v in out.items() if k.startswith("step_ms_")}
    out["augment_share_of_fused_step"] = round(out["augment_ms_per_batch"] / (out["augment_ms_per_batch"] + out["step_ms_fused_batch_norm"]), 3)
    return out


def _identity(keras):
    class NoNorm(keras.layers.Layer):
        def __init__(self, momentum=None, name=None, **_):
            super().__init__(name=name)

        def call(self, x):
            return x

    return NoNorm
