"""Measure the gate on a dataset: false accepts / false rejects, detection, classification.

  maskgate eval --data DIR [--json OUT]

DIR is a labelled frames folder (*.jpg + labels.json, like ../shared/data/encounters) or a Pascal
VOC folder (images/ + annotations/, like ../shared/data/wild).  For frames: the gate's single-frame
verdict on each, false-accept and false-reject rates, overall and on scenes held out of training.
For VOC photos: detection recall by class and size and precision, the classifier on ground-truth
boxes, and the gate on doorway frames made from each face (the encounters protocol).
--face-free adds frames of objects and empty doorways made from ../shared (none may unlock).
--sweep adds the threshold trade-off (maskgate.sweep): false accepts and false rejects at other
detector / p_mask thresholds, and the must-stay-locked frames that bound p_mask, from one model run.
--lowlight MODE --darken evaluates on darkened frames with a low-light step; --grayscale on frames
without colour, as a Pi NoIR / IR camera delivers them at night.
The int8 models (the device's) and the float references are measured side by side when the
float ones are available (~/.cache/maskgate/float_models, made by `maskgate convert`).
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p):
    p.add_argument("--data", type=Path, required=True, help="frames folder or VOC folder")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the report as JSON")
    p.add_argument("--config", action="append", default=[], metavar="FILE")
    p.add_argument("--models", default="int8,float", help="int8, float or both (default: %(default)s)")
    p.add_argument("--face-free", action="store_true", help="also measure frames of objects and empty doorways")
    p.add_argument("--darken", action="store_true", help="darken every frame first (dusk)")
    p.add_argument("--grayscale", action="store_true", help="drop the colour of every frame first (IR camera at night)")
    p.add_argument("--sweep", action="store_true", help="also print false accepts / rejects at other thresholds")
    p.add_argument("--lowlight", choices=["off", "gamma", "clahe", "auto"], default="off", help="low-light step before inference")


def _variants(cfg, wanted: list[str]) -> dict:
    from maskgate.convert.pipeline import float_model_dir
    from maskgate.edge.model_files import build_analyzer, model_paths

    out = {}
    det, clf = model_paths(cfg)
    if "int8" in wanted:
        out["int8"] = build_analyzer(cfg)
    if "float" in wanted:
        fdet = float_model_dir() / det.name.replace("_int8", "_float")  # as `maskgate convert` names it
        fclf = clf.with_name(clf.name.replace("_int8", "_float"))
        if fdet.is_file() and fclf.is_file():
            out["float"] = build_analyzer(cfg, detector=fdet, classifier=fclf)
        else:
            out["float"] = f"skipped: float models not found ({fdet}); run `maskgate convert --only detector`"
    return out


def main(args) -> int:
    from maskgate import datasets, evaluation
    from maskgate.edge import config as config_mod
    from maskgate.edge.lowlight import darken, grayscale, make_enhancer

    cfg = config_mod.load(args.config)
    kind = datasets.dataset_kind(args.data)
    enhance = None if args.lowlight == "off" else make_enhancer(args.lowlight)

    def transform(img):
        if args.grayscale:
            img = grayscale(img)
        if args.darken:
            img = darken(img)
        return enhance(img) if enhance else img

    t = transform if (args.darken or args.grayscale or enhance) else None
    report = {"data": str(args.data), "kind": kind, "darkened": args.darken, "grayscale": args.grayscale,
              "lowlight": args.lowlight, "models": {}}
    for name, analyzer in _variants(cfg, args.models.split(",")).items():
        if isinstance(analyzer, str):
            report["models"][name] = analyzer
            continue
        r = {"thresholds": {"score": analyzer.detector.score_threshold, "p_mask": analyzer.mask_threshold,
                            "min_face": analyzer.min_face}}
        if kind == "frames":
            r["gate"] = evaluation.evaluate_gate(analyzer, evaluation.frames_from_folder(args.data, transform=t))
        elif kind == "voc":
            images = datasets.read_voc(args.data)
            r["detection"] = evaluation.detection_metrics(analyzer, images)
            r["classifier"] = evaluation.classifier_metrics(analyzer, images)
            r["gate"] = evaluation.evaluate_gate(analyzer, evaluation.frames_from_voc(args.data, transform=t))
        else:
            from maskgate.errors import DataError

            raise DataError(f"{args.data}: eval takes a frames folder or a VOC folder, not a faces folder")
        if args.face_free:
            r["face_free"] = evaluation.face_free_metrics(analyzer, datasets.shared_dir())
        if args.sweep:
            # a second pass over the frames, on purpose: the gate report above comes from the device's own
            # per-frame path (analyse), the sweep from recorded candidates; tests hold the two to the same counts
            frames = evaluation.frames_from_folder(args.data, transform=t) if kind == "frames" else \
                evaluation.frames_from_voc(args.data, transform=t)
            r["sweep"] = evaluation.threshold_sweep(analyzer, frames, datasets.shared_dir() if args.face_free else None)
        report["models"][name] = r
        _print_summary(name, r)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report: {args.json}")
    return 0


def _print_summary(name: str, r: dict) -> None:
    g = r.get("gate", {})
    for part, x in g.items():
        fa = x["false_accept_rate"]
        fr = x["false_reject_rate"]
        print(f"[{name}] gate ({part}, {x['frames']} frames): false accepts {x['false_accepts']}/{x['must_lock']}"
              f" = {100 * (fa or 0):.2f}%, false rejects {x['false_rejects']}/{x['must_unlock']} = {100 * (fr or 0):.2f}%")
        for label, row in x["by_label"].items():
            print(f"    {label:<22} {row['frames']:>4} frames, unlocked {row['unlocked']:>4}, no face found {row['no_face_found']:>3}")
    if "detection" in r:
        rec = r["detection"]["recall"]
        print(f"[{name}] detection recall: " + ", ".join(f"{k} {v['recall']:.3f}" for k, v in sorted(rec.items()))
              + f"; precision >= {r['detection']['precision']}")
    if "classifier" in r:
        c = r["classifier"]["all"]
        print(f"[{name}] classifier on ground-truth boxes: gate accuracy {c['gate_accuracy']} over {c['faces']} faces")
    if "face_free" in r:
        ff = r["face_free"]
        print(f"[{name}] face-free frames: {ff['unlocked']}/{ff['frames']} unlocked, faces reported in {ff['faces_reported']}")
    if "sweep" in r:
        _print_sweep(name, r["sweep"])


def _print_sweep(name: str, sw: dict) -> None:
    door = sw["door"]
    parts = [p for p in ("held_out_scenes", "face_free") if p in sw["table"][0]]
    print(f"[{name}] threshold sweep at detector score {door['score']} (the door: p_mask {door['p_mask']}):")
    print("    p_mask  false accepts  false rejects  " + "  ".join(
        {"held_out_scenes": "held-out false rejects", "face_free": "face-free unlocked"}[p] for p in parts))
    for row in sw["table"]:
        a = row["all"]
        cols = [f"{row['p_mask']:<6}", f"{a['false_accepts']:>5}/{a['must_lock']:<7}",
                f"{a['false_rejects']:>5}/{a['must_unlock']:<7}"]
        if "held_out_scenes" in row:
            h = row["held_out_scenes"]
            cols.append(f"{h['false_rejects']:>12}/{h['must_unlock']:<9}")
        if "face_free" in row:
            f = row["face_free"]
            cols.append(f"{f['false_accepts']:>12}/{f['must_lock']}")
        print("    " + "  ".join(cols))
    print(f"    masked frames no p_mask lets in (no face at the door, or too many people): {sw['never_unlock']}")
    print("    must-stay-locked frames that unlock at the highest p_mask: " + ", ".join(
        f"{h['name']} ({h['label']}) {h['unlock_point']:.3f}" for h in sw["hardest_must_lock"][:5]))
    print("    p_mask must lie above, per detector score: " + ", ".join(
        f"{b['score']}: {b['bound']:.3f}" if b["bound"] is not None else f"{b['score']}: any" for b in sw["bounds"]))
