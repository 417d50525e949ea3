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
    p.add_argument("--unaudited", action="store_true", help="judge by the crop-level rule before the label audit: every "
                   "'not a face' detection counted, also those away from annotated faces (many are unannotated masked "
                   "faces; docs/training.md, 'The label audit')")
    p.add_argument("--reference", type=Path, nargs="*", default=None, metavar="TFLITE",
                   help="model files judged the same way, as reference lines (default: the committed int8 classifier)")


def _member_runs(settings, out: Path) -> list[tuple[object, Path]]:
    """An ensemble's members as runs of their recipe in ``out`` (shared with that recipe's own runs there)."""
    from maskgate.models.ensemble import member_seeds, member_settings

    if settings.members <= 1:
        return []
    members = [member_settings(settings, seed) for seed in member_seeds(settings)]
    return [(m, out / f"{m.recipe}_s{m.seed}") for m in members]


def _single_runs(planned, out: Path) -> list[tuple[object, Path]]:
    """Every single training run the plan needs: its single-model runs and its ensembles' members, once each."""
    runs = {}
    for settings, run in planned:
        for m, d in (_member_runs(settings, out) if settings.members > 1 else [(settings, run)]):
            runs.setdefault(d, m)
    return [(m, d) for d, m in runs.items()]


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
    from maskgate.models.ensemble import is_run_of, train_ensemble
    from maskgate.models.seed_compare import compare
    from maskgate.models.train import recipe_settings, train
    from maskgate.models.training_runs import train_in_parallel
    from maskgate.models.train_config import build_dir, crops_dir

    recipes, seeds = args.recipes, args.seeds
    shared = args.shared or datasets.shared_dir()
    detector = args.detector or door_detector(ARTIFACT_DIR)
    if not detector.is_file():
        raise DataError(f"--detector: no such file {detector}")
    out = args.out or build_dir() / "seeds"
    # seed by seed, so that a stopped comparison still has every recipe at the seeds it got to
    planned = [(recipe_settings(recipe, seed=seed), out / f"{recipe}_s{seed}") for seed in seeds for recipe in recipes]
    singles = _single_runs(planned, out)
    for settings, run in singles:
        if (run / "report.json").is_file() and not is_run_of(run, settings):
            raise DataError(f"{run} holds a run of other settings than {settings.recipe} at seed {settings.seed}; "
                            "move it away or use another --out")
    missing = [(settings, run) for settings, run in singles if not is_run_of(run, settings)]
    if missing and not args.compare_only:
        if args.jobs > 1:
            train_in_parallel(missing, args.jobs, shared, detector)
        else:
            for settings, run in missing:
                print(f"training {run.name}", flush=True)
                train(shared, detector, run, settings, crops_dir=crops_dir())
    for settings, run in planned:  # ensembles whose members are all there: put together (seconds)
        members = _member_runs(settings, out)
        if settings.members > 1 and not is_run_of(run, settings) and all(is_run_of(d, m) for m, d in members):
            train_ensemble(shared, detector, run, settings, crops_dir=crops_dir(), member_dirs=[d for _, d in members])
    runs = [run for _, run in planned if (run / "report.json").is_file()]
    if not runs:
        raise DataError(f"no runs to compare in {out}")
    references = [ARTIFACT_DIR / "mask_classifier_int8.tflite"] if args.reference is None else args.reference
    runs = list(references) + runs
    results, table = compare(shared, detector, runs, crops_dir(), baseline=recipes[0], audited=not args.unaudited)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "table": table}, indent=2) + "\n")
    return 0
