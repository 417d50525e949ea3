"""Fine-tune the face detector on masked faces, compare detectors, convert one (needs the train extra).

  maskgate detector train --seed 0          fine-tune res10 (build/detector/ft_s0: weights, report.json),
                                            then convert it as `maskgate detector convert` does
  maskgate detector compare [RUN_OR_TFLITE ...]
                                            recall by class and distance, boxes against cv2.dnn's, false
                                            detections on face-free frames, for cv2.dnn at 300x300, the
                                            committed int8 detector and each run (float) or .tflite given
  maskgate detector compare --gate RUN ...  also each at the gate, the committed classifier held fixed
                                            (the pair the gate-level rule chooses for each detector)
  maskgate detector convert RUN             the run's weights as an int8 224x168 detector in models/,
                                            with its own manifest entry (face_detector_ft_224x168_int8.tflite)

What the fine-tuning does and why: maskgate/models/detector_finetune.py; the figures: docs/training.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from maskgate.errors import DataError


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="fine-tune res10 on the wild training scenes' doorway frames")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, help="override the default number of epochs")
    t.add_argument("--distill-weight", type=float, help="weight of the distilled priors' loss (default: DetectorSettings')")
    t.add_argument("--backgrounds", type=int, help="face-free training frames per photo (default: DetectorSettings')")
    t.add_argument("--hard-framings", type=int, help="more frames of each face res10 misses at 300x300 "
                   "(default: DetectorSettings')")
    t.add_argument("--out", type=Path, help="the run's folder (default: build/detector/ft_sSEED)")
    t.add_argument("--limit", type=int, help="use only this many training frames (quick runs and tests)")
    t.add_argument("--shared", type=Path, help="the shared data folder (default: ../shared)")
    t.add_argument("--no-convert", action="store_true", help="only fine-tune; do not write the int8 model into models/")
    c = sub.add_parser("compare", help="detectors side by side on held-out doorway frames and face-free frames")
    c.add_argument("detectors", nargs="*", type=Path, help="fine-tuning run folders or .tflite detectors")
    c.add_argument("--limit", type=int, help="only this many frames of each kind (quick runs and tests)")
    c.add_argument("--json", type=Path, help="also write every figure here")
    c.add_argument("--gate", action="store_true", help="also judge the door's detector and each one given at the gate: "
                   "the committed classifier held fixed, each with the threshold pair the gate-level rule chooses "
                   "for it (about 20 s each; runs are converted to int8 first)")
    c.add_argument("--shared", type=Path, help="the shared data folder (default: ../shared)")
    v = sub.add_parser("convert", help="a fine-tuning run → int8 TFLite detector in models/ with its manifest entry")
    v.add_argument("run", type=Path, help="the fine-tuning run's folder")
    v.add_argument("--out", type=Path, help="where the int8 model and manifest go (default: the package's models/)")
    v.add_argument("--no-measure", action="store_true", help="skip the recall measurements (quick conversions)")
    v.add_argument("--shared", type=Path, help="the shared data folder (default: ../shared)")


def main(args) -> int:
    from maskgate import datasets

    shared = args.shared or datasets.shared_dir()
    return {"train": _train, "compare": _compare, "convert": _convert}[args.action](args, shared)


def _train(args, shared: Path) -> int:
    from maskgate.models.detector_finetune import DetectorSettings, finetune
    from maskgate.models.train_config import build_dir

    settings = DetectorSettings(seed=args.seed)
    for key, low in (("epochs", 1), ("distill_weight", 0.0), ("backgrounds", 0), ("hard_framings", 0)):
        value = getattr(args, key)
        if value is not None:
            if value < low:
                raise DataError(f"--{key.replace('_', '-')} must be at least {low}, not {value}")
            setattr(settings, key, value)
    out = args.out or build_dir() / "detector" / f"ft_s{args.seed}"
    report = finetune(shared, out, settings, limit=args.limit)
    print(f"weights: {out / report['weights']} ({report['frames']} frames, {report['seconds']:.0f} s)")
    if args.no_convert:
        return 0
    args.run, args.out, args.no_measure = out, None, False
    return _convert(args, shared)


def _detect_fn(path: Path, shared: Path):
    """A ``detect(frame, threshold)`` for a .tflite file (the device's path) or a run folder (float Keras)."""
    from maskgate.convert.detector import face_detector_files
    from maskgate.edge.detector import FaceDetector
    from maskgate.edge.runtime import load_model
    from maskgate.models.detector_finetune import WEIGHTS_NAME, load_finetuned
    from maskgate.models.face_detector import KerasFaceDetector

    if path.suffix == ".tflite":
        if not path.is_file():
            raise DataError(f"detector not found: {path}")
        return FaceDetector(load_model(path, threads=1, edgetpu="off")).detect_normalized
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise DataError(f"{path} is neither a .tflite detector nor a fine-tuning run (no {WEIGHTS_NAME})")
    report = json.loads((path / "report.json").read_text())["settings"]
    model = load_finetuned(weights, report["width"], report["height"], pb_path=face_detector_files(shared)[0])
    return KerasFaceDetector(model).detect_normalized


def _compare(args, shared: Path) -> int:
    from maskgate.convert.detector import DOORWAY_SIZE, detector_name, face_detector_files
    from maskgate.convert.parity import OpenCVReference
    from maskgate.detector_eval import compare_detectors, format_comparison
    from maskgate.models import ARTIFACT_DIR

    committed = ARTIFACT_DIR / detector_name(*DOORWAY_SIZE)
    paths = [committed] + [p for p in args.detectors if p.resolve() != committed.resolve()]
    detectors = {}
    for p in paths:
        # Runs converted to int8 all hold a face_detector_ft_...tflite: the same name must not overwrite.
        name = f"{p.name} (float)" if p.suffix != ".tflite" else p.name
        detectors[name if name not in detectors else str(p)] = _detect_fn(p, shared)
    result = compare_detectors(shared, detectors, reference=OpenCVReference(*face_detector_files(shared), 300, 300),
                               limit=args.limit)
    print(format_comparison(result))
    if args.gate:
        result["gate"] = _judge_at_gate(args.detectors, shared)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def _judge_at_gate(detectors: list[Path], shared: Path) -> dict:
    """The door's detector and each given one at the gate (:mod:`maskgate.convert.detector_gate`); prints the table."""
    import tempfile

    from maskgate.convert.detector import door_detector
    from maskgate.convert.detector_gate import format_judgements, judge_at_gate
    from maskgate.convert.finetuned_detector import convert_finetuned
    from maskgate.models import ARTIFACT_DIR

    door = door_detector(ARTIFACT_DIR)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="maskgate-int8-") as tmp:
        for i, p in enumerate([door] + [p for p in detectors if p.resolve() != door.resolve()]):
            path = p
            if p.suffix != ".tflite":  # a fine-tuning run: its int8 file, as `maskgate detector convert` makes it
                out = Path(tmp) / str(i)
                out.mkdir()
                name, _ = convert_finetuned(shared, out, p, command="", measure=False, float_dir=out / "float")
                path = out / name
            rows[p.name if p.name not in rows else str(p)] = judge_at_gate(shared, path, ARTIFACT_DIR)
    print()
    print(format_judgements(rows))
    return rows


def _convert(args, shared: Path) -> int:
    from maskgate.convert.finetuned_detector import convert_finetuned
    from maskgate.models import ARTIFACT_DIR

    name, entry = convert_finetuned(shared, args.out or ARTIFACT_DIR, args.run, measure=not args.no_measure,
                                    command=_command(args))
    print(f"{name}: {entry['bytes']} bytes, sha256 {entry['sha256'][:16]}..., edgetpu check "
          f"{'OK' if entry['edgetpu_check']['ok'] else 'PROBLEMS'}")
    return 0


def _command(args) -> str:
    """The command that regenerates the artifact, as the manifest records it."""
    import sys

    argv = sys.argv[1:]
    return " ".join(["maskgate"] + argv) if argv[:1] == ["detector"] else f"maskgate detector convert {args.run}"
