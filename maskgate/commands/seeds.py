"""Train recipes over several seeds and compare them at gate level (needs the train extra).

`maskgate seeds --recipes fast,fast+12k --seeds 0,1,2` trains every (recipe, seed) run that is not
already in the output folder (build/seeds/RECIPE_sSEED, crops shared through build/crops), then
judges each run as `maskgate convert` would choose its thresholds and prints, per recipe, the mean
and spread over seeds and Welch's t against the first recipe, below a line for the committed
classifier judged the same way.  Runs are kept, so the command can be
stopped and started again, and more seeds added later.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from maskgate.errors import DataError


def add_arguments(p):
    p.add_argument("--recipes", type=_recipes, default="v2,fast,fast+12k", help="comma-separated recipe names (default: %(default)s); "
                   "the first is the baseline")
    p.add_argument("--seeds", type=_ints, default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    p.add_argument("--out", type=Path, help="the runs' folder (default: build/seeds)")
    p.add_argument("--shared", type=Path, help="the shared data folder (default: ../shared)")
    p.add_argument("--compare-only", action="store_true", help="train nothing; compare the runs already there")
    p.add_argument("--jobs", type=int, default=1, help="training runs side by side, one TensorFlow thread each "
                   "(2 on a 2-core machine halves the time; default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write every run's figures and the table here")
    p.add_argument("--detector", type=Path, help="the int8 door detector the runs are trained with (its crops) and judged "
                   "with (default: the gate's); use a separate --out for each detector")
    p.add_argument("--audited", action="store_true", help="crop-level rule without the 'not a face' detections away "
                   "from annotated faces (many are unannotated masked faces; docs/training.md, 'The label audit')")
    p.add_argument("--reference", type=Path, nargs="*", default=None, metavar="TFLITE",
                   help="model files judged the same way, as reference lines (default: the committed int8 classifier)")


def _train_in_parallel(runs: list[tuple[str, int, Path]], jobs: int, shared: Path, detector: Path) -> None:
    """Each run a ``maskgate train`` process with one TensorFlow thread, ``jobs`` at a time.

    This network's ops are too small for TensorFlow to keep two threads busy: one run with one
    thread takes about as long per step as with two, so two runs side by side take half the time.
    """
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}

    def one(item):
        recipe, seed, run = item
        run.mkdir(parents=True, exist_ok=True)
        print(f"training {run.name} (log: {run / 'train.log'})", flush=True)
        with open(run / "train.log", "w") as log:
            done = subprocess.run([sys.executable, "-m", "maskgate", "train", "--recipe", recipe, "--seed", str(seed),
                                   "--out", str(run), "--shared", str(shared), "--detector", str(detector),
                                   "--no-convert"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode:
            raise DataError(f"training {run.name} failed (exit {done.returncode}); see {run / 'train.log'}")

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, runs))


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def _recipes(text: str) -> list[str]:
    from maskgate.models.train import RECIPES

    names = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in names if r not in RECIPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown recipe {unknown[0] if unknown else text!r} (known: {', '.join(RECIPES)})")
    return names


def main(args) -> int:
    from maskgate import datasets
    from maskgate.convert.detector import door_detector
    from maskgate.models import ARTIFACT_DIR
    from maskgate.models.seed_compare import compare
    from maskgate.models.train import recipe_settings, train
    from maskgate.models.train_config import build_dir, crops_dir

    recipes, seeds = args.recipes, args.seeds
    shared = args.shared or datasets.shared_dir()
    detector = args.detector or door_detector(ARTIFACT_DIR)
    if not detector.is_file():
        raise DataError(f"--detector: no such file {detector}")
    out = args.out or build_dir() / "seeds"
    # seed by seed, so that a stopped comparison still has every recipe at the seeds it got to
    planned = [(recipe, seed, out / f"{recipe}_s{seed}") for seed in seeds for recipe in recipes]
    missing = [p for p in planned if not (p[2] / "report.json").is_file()]
    if missing and not args.compare_only:
        if args.jobs > 1:
            _train_in_parallel(missing, args.jobs, shared, detector)
        else:
            for recipe, seed, run in missing:
                print(f"training {run.name}", flush=True)
                train(shared, detector, run, recipe_settings(recipe, seed=seed), crops_dir=crops_dir())
    runs = [run for _, _, run in planned if (run / "report.json").is_file()]
    if not runs:
        raise DataError(f"no runs to compare in {out}")
    references = [ARTIFACT_DIR / "mask_classifier_int8.tflite"] if args.reference is None else args.reference
    runs = list(references) + runs
    results, table = compare(shared, detector, runs, crops_dir(), baseline=recipes[0], audited=args.audited)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "table": table}, indent=2) + "\n")
    return 0
