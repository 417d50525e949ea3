"""Convert the face detector and the mask classifier to full-integer int8 TFLite (needs the train extra).

Writes models/face_detector_<W>x<H>_int8.tflite for each size, models/mask_classifier_int8.tflite
and models/manifest.json (hashes, tensors, thresholds, metrics float vs int8, tool versions, the
command).  Float reference models go to ~/.cache/maskgate/float_models (not committed).
The detector comes from ../shared/models/face_detector; the classifier from `maskgate train`'s
Keras model.  `maskgate convert --check FILE...` only runs the static int8 / Edge TPU op check.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT") from None
    return w, h


def add_arguments(p):
    p.add_argument("--check", nargs="+", metavar="TFLITE", help="only check these files (int8 tensors, Edge TPU ops)")
    p.add_argument("--shared", type=Path, help="the shared data folder (default: ../shared)")
    p.add_argument("--out", type=Path, help="where the int8 models and manifest go (default: the package's models/)")
    p.add_argument("--only", choices=["detector", "classifier"], help="convert one model only")
    p.add_argument("--sizes", default="300x300,224x168", help="detector input sizes, WIDTHxHEIGHT,... (default: %(default)s)")
    p.add_argument("--classifier-keras", type=Path, help="the trained classifier (default: build/classifier/mask_classifier.keras)")
    p.add_argument("--calibration", type=int, default=320, help="calibration samples per model (default: %(default)s)")
    p.add_argument("--no-measure", action="store_true", help="skip the float-vs-int8 measurements (quick conversions)")


def main(args) -> int:
    from maskgate.convert.edgetpu_check import main_check

    if args.check:
        return main_check(args.check)

    from maskgate import datasets
    from maskgate.convert.pipeline import convert_all
    from maskgate.errors import DataError
    from maskgate.models import ARTIFACT_DIR
    from maskgate.models.train_config import crops_dir, default_keras_path

    shared = args.shared or datasets.shared_dir()
    out = args.out or ARTIFACT_DIR
    sizes = [] if args.only == "classifier" else [_size(s) for s in args.sizes.split(",") if s]
    keras_path = None
    if args.only != "detector":
        keras_path = args.classifier_keras or default_keras_path()
        if not keras_path.is_file():
            raise DataError(f"no trained classifier at {keras_path}: run `maskgate train` first (or --only detector)")
    command = " ".join(["maskgate"] + sys.argv[1:]) if sys.argv[1:2] == ["convert"] else "maskgate convert"
    man = convert_all(shared, out, detector_sizes=sizes, classifier_keras=keras_path, command=command,
                      measure=not args.no_measure, calibration_count=args.calibration, crops_dir=crops_dir())
    for name, entry in sorted(man["artifacts"].items()):
        print(f"{name}: {entry['bytes']} bytes, sha256 {entry['sha256'][:16]}..., edgetpu check "
              f"{'OK' if entry['edgetpu_check']['ok'] else 'PROBLEMS'}")
    return 0
