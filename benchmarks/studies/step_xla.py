"""A training step of the classifier with and without XLA (jit_compile), side by side, one thread.

  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/step_xla.py
"""
import sys, time
import numpy as np
from maskgate.models._tf import import_keras
from maskgate.models import mask_classifier as mc
keras = import_keras()
rng = np.random.default_rng(0)
bs = int(sys.argv[1]) if len(sys.argv) > 1 else 64
x = rng.uniform(0, 255, (bs, 96, 96, 3)).astype(np.float32)
y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, bs)]
res = {}
for rep in range(2):
  for jit in (False, True):
    m = mc.build_mask_classifier(96, 3, seed=0)
    m.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy", jit_compile=jit)
    for _ in range(3): m.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(15): m.train_on_batch(x, y)
    ms = (time.perf_counter() - t) / 15 * 1000
    res.setdefault(jit, []).append(ms)
    print("jit", jit, round(ms, 1), flush=True)
print({k: [round(v,1) for v in vs] for k, vs in res.items()})
