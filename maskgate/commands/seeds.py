"""Train recipes over several seeds and compare them at gate level (needs the train extra).

`maskgate seeds --recipes fast,fast+12k --seeds 0,1,2` trains every (recipe, seed) run that is not
already in the output folder (build/seeds/RECIPE_sSEED, crops shared through build/crops), then
judges each run as `maskgate convert` would choose its thresholds and prints, per recipe, the mean
and spread over seeds and Welch's t against the first recipe, below a line for the committed
classifier judged the same way.  Runs are kept, so the command can be
stopped and started again, and more seeds added later.
"""

from __future__ import annotations

import json
from pathlib import Path

from maskgate.errors import ConfigError


def add_arguments(p):
    p.add_argument("--recipes", default="fast,fast+12k", help="comma-separated recipe names (default: %(default)s); "
                   "the first is the baseline")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    p.add_argument("--out", type=Path, help="the runs' folder (default: build/seeds)")
    p.add_argument("--shared", type=Path, help="the shared data folder (default: ../shared)")
    p.add_argument("--compare-only", action="store_true", help="train nothing; compare the runs already there")
    p.add_argument("--json", type=Path, help="also write every run's figures and the table here")
    p.add_argument("--reference", type=Path, nargs="*", default=None, metavar="TFLITE",
                   help="model files judged the same way, as reference lines (default: the committed int8 classifier)")


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r} is not a comma-separated list of integers") from None


def main(args) -> int:
    from maskgate import datasets
    from maskgate.convert.detector import DOORWAY_SIZE, detector_name
    from maskgate.models import ARTIFACT_DIR
    from maskgate.models.seed_compare import compare
    from maskgate.models.train import RECIPES, recipe_settings, train
    from maskgate.models.train_config import build_dir, crops_dir

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise ConfigError(f"--recipes: unknown recipe {unknown[0]!r} (known: {', '.join(RECIPES)})")
    seeds = _ints(args.seeds)
    shared = args.shared or datasets.shared_dir()
    detector = ARTIFACT_DIR / detector_name(*DOORWAY_SIZE)
    out = args.out or build_dir() / "seeds"
    runs = []
    for seed in seeds:  # seed by seed, so that a stopped comparison still has every recipe at the seeds it got to
        for recipe in recipes:
            run = out / f"{recipe}_s{seed}"
            if not (run / "report.json").is_file():
                if args.compare_only:
                    continue
                print(f"training {run.name}", flush=True)
                train(shared, detector, run, recipe_settings(recipe, seed=seed), crops_dir=crops_dir())
            runs.append(run)
    if not runs:
        raise ConfigError(f"no runs to compare in {out}")
    references = [ARTIFACT_DIR / "mask_classifier_int8.tflite"] if args.reference is None else args.reference
    runs = list(references) + runs
    results, table = compare(shared, detector, runs, crops_dir(), baseline=recipes[0])
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "table": table}, indent=2) + "\n")
    return 0
