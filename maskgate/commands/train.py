"""Train the mask classifier on ../shared, then convert it to int8 (needs the train extra).

Builds the training crops with the device's own detector and crop function, trains from scratch,
writes build/classifier/{mask_classifier.keras, curves.png, confusion.png, report.json}, and then
runs `maskgate convert --only classifier` so that models/mask_classifier_int8.tflite and the
manifest follow the new model.  This is the one command that regenerates the classifier artifact.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(p):
    p.add_argument("--shared", type=Path, help="the shared data folder (default: ../shared)")
    p.add_argument("--detector", type=Path, help="int8 detector used to find the training faces "
                   "(default: the gate's, edge.model_files.DEFAULT_DETECTOR in models/)")
    p.add_argument("--out", type=Path, help="training outputs (default: build/classifier)")
    p.add_argument("--recipe", default=None, help="a named training set-up (default: DEFAULT_RECIPE in models/train.py, the committed classifier's: v2x2)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--epoch-size", type=int, help="override the examples drawn per epoch")
    p.add_argument("--batch-size", type=int, help="override the batch size")
    p.add_argument("--crops", type=Path, help="the cached crop sets' folder (default: build/crops)")
    p.add_argument("--jobs", type=int, default=2, help="an ensemble's members trained side by side, one TensorFlow "
                   "thread each (default: %(default)s, for 2 cores)")
    p.add_argument("--limit", type=int, help="use only this many pictures per source (quick runs and tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-convert", action="store_true", help="do not convert the trained model to int8 afterwards")
    p.add_argument("--profile", action="store_true", help="train nothing: time a training step (Keras batch norm, "
                   "fused, none) and a batch of augmentation side by side, and print them")


def main(args) -> int:
    if args.profile:
        import json

        from maskgate.models.train_profile import profile

        print(json.dumps(profile(), indent=2))
        return 0
    from maskgate import datasets
    from maskgate.convert.detector import door_detector
    from maskgate.models import ARTIFACT_DIR
    from maskgate.errors import DataError
    from maskgate.models.train import DEFAULT_RECIPE, RECIPES, recipe_settings, train
    from maskgate.models.train_config import build_dir, crops_dir

    shared = args.shared or datasets.shared_dir()
    detector = args.detector or door_detector(ARTIFACT_DIR)
    out = args.out or build_dir() / "classifier"
    if args.recipe is not None and args.recipe not in RECIPES:
        raise DataError(f"--recipe: unknown recipe {args.recipe!r} (known: {', '.join(RECIPES)})")
    overrides = {k: v for k, v in (("epochs", args.epochs), ("epoch_size", args.epoch_size),
                                   ("batch_size", args.batch_size)) if v is not None}
    settings = recipe_settings(args.recipe or DEFAULT_RECIPE, seed=args.seed, **overrides)
    crops = args.crops or crops_dir()
    report = train(shared, detector, out, settings, limit=args.limit, crops_dir=crops, jobs=args.jobs)
    c = report["threshold_choice"]
    print(f"model: {out / 'mask_classifier.keras'}")
    print(f"validation: threshold {c['threshold']:.3f}, false accepts {100 * c['false_accept_rate']:.2f}% "
          f"of {c['negatives']}, false rejects {100 * c['false_reject_rate']:.2f}% of {c['positives']}")
    if args.no_convert:
        return 0
    from maskgate.convert.pipeline import convert_all

    command = " ".join(["maskgate"] + sys.argv[1:]) if sys.argv[1:2] == ["train"] else "maskgate train"
    convert_all(shared, ARTIFACT_DIR, detector_sizes=[], classifier_keras=out / "mask_classifier.keras", command=command,
                crops_dir=crops)
    print(f"converted: {ARTIFACT_DIR / 'mask_classifier_int8.tflite'}")
    return 0
