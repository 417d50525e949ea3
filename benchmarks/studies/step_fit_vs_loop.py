"""Keras fit on the training batches against a plain train_on_batch loop, side by side, one thread.

  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/step_fit_vs_loop.py

Needs the crop set in build/crops (any `maskgate train` run makes it).
"""
import time, numpy as np
from pathlib import Path
from maskgate.models._tf import import_keras
from maskgate.models import mask_classifier as mc
from maskgate.models.augment import augment_batch
from maskgate.models.train import _batches
keras = import_keras()
z = np.load(sorted(Path('build/crops').glob('crops_*.npz'))[0]); imgs = z['images']; labels = z['labels']
onehot = np.eye(3, dtype=np.float32)[labels]
N = 100
def draw(epoch): return np.random.default_rng((0, epoch)).choice(len(imgs), N * 64)
def model():
    m = mc.build_mask_classifier(96, 3, seed=0)
    m.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05), metrics=['accuracy'])
    return m
for rep in range(2):
    m = model(); b = _batches(keras, imgs, onehot, draw, 64, 96, 0)
    m.fit(b, epochs=1, verbose=0)  # warm
    t = time.perf_counter(); m.fit(b, epochs=1, verbose=0); tf_ = (time.perf_counter() - t) / N * 1000
    m = model(); order = draw(0); m.train_on_batch(augment_batch(imgs[np.sort(order[:64])], np.random.default_rng(0), 96), onehot[np.sort(order[:64])])
    t = time.perf_counter(); ta = 0
    for i in range(N):
        sel = np.sort(order[i*64:(i+1)*64]); t1 = time.perf_counter()
        x = augment_batch(imgs[sel], np.random.default_rng((0, 0, i)), 96); ta += time.perf_counter() - t1
        m.train_on_batch(x, onehot[sel])
    tl = (time.perf_counter() - t) / N * 1000
    print(f"fit {tf_:.1f} ms/step, loop {tl:.1f} ms/step (aug {ta/N*1000:.1f})", flush=True)
