"""Training runs as separate processes, side by side: ``maskgate train`` once per (settings, folder).

This network's ops are too small for TensorFlow to keep two threads busy: one run with one thread
takes about as long per step as with two, so two runs side by side, one thread each, take half the
time of two in a row (docs/training.md, "Where the time goes").  ``maskgate seeds`` trains its
comparison this way and ``maskgate train`` an ensemble's members.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from maskgate.errors import DataError

#: one TensorFlow thread per run
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}


def train_command(settings, out: Path, shared: Path, detector: Path, *, crops: Path | None = None,
                  limit: int | None = None) -> list[str]:
    """The ``maskgate train`` command line that makes ``settings`` (a recipe, its seed, its overrides) in ``out``."""
    from dataclasses import asdict

    from maskgate.models.train import recipe_settings

    cmd = [sys.executable, "-m", "maskgate", "train", "--recipe", settings.recipe, "--seed", str(settings.seed),
           "--out", str(out), "--shared", str(shared), "--detector", str(detector), "--no-convert"]
    planned = asdict(recipe_settings(settings.recipe, seed=settings.seed))
    for field, flag in (("epochs", "--epochs"), ("epoch_size", "--epoch-size"), ("batch_size", "--batch-size")):
        if getattr(settings, field) != planned[field]:
            cmd += [flag, str(getattr(settings, field))]
    rest = {k: v for k, v in asdict(settings).items() if k not in ("epochs", "epoch_size", "batch_size")}
    if rest != {k: v for k, v in planned.items() if k not in ("epochs", "epoch_size", "batch_size")}:
        raise DataError(f"{out.name}: settings beyond the recipe {settings.recipe!r}, its seed, epochs, epoch size and "
                        "batch size cannot be given to a training process")
    if crops is not None:
        cmd += ["--crops", str(crops)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    return cmd


def train_in_parallel(runs: list[tuple[object, Path]], jobs: int, shared: Path, detector: Path, *,
                      crops: Path | None = None, limit: int | None = None) -> None:
    """Train each ``(settings, folder)`` in its own process with one TensorFlow thread, ``jobs`` at a time.

    Each run's output goes to ``train.log`` in its folder; a failed run raises :class:`DataError` naming it.
    """
    env = {**os.environ, **ONE_THREAD}

    def one(item):
        settings, run = item
        run.mkdir(parents=True, exist_ok=True)
        print(f"training {run.name} (log: {run / 'train.log'})", flush=True)
        with open(run / "train.log", "w") as log:
            done = subprocess.run(train_command(settings, run, shared, detector, crops=crops, limit=limit),
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode:
            raise DataError(f"training {run.name} failed (exit {done.returncode}); see {run / 'train.log'}")

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        list(pool.map(one, runs))
