"""Run the models on still images and print the single-frame verdict of the default policy.

  maskgate detect --json IMAGE...   one JSON object per line per image:
  {"image": path, "decision": "unlock"|"deny"|"no_face", "faces": [{"box": [x1,y1,x2,y2], "score": s,
   "label": "with_mask"|"without_mask", "p_mask": p}]}

Boxes are in the image's pixels; only faces at least detection.min_face wide count (the person at
the door).  An image that cannot be read gives {"image": path, "error": "..."} and exit status 1
after the others are done.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p):
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")
    p.add_argument("--config", action="append", default=[], metavar="FILE")


def verdict(faces, max_people: int) -> str:
    from maskgate.edge.policy import frame_passes

    if not faces:
        return "no_face"
    return "unlock" if frame_passes(faces, max_people)[0] else "deny"


def main(args) -> int:
    from maskgate.edge import config as config_mod
    from maskgate.edge.model_files import build_analyzer
    from maskgate.edge.sources.replay import read_image
    from maskgate.errors import ImageError

    cfg = config_mod.load(args.config)
    analyzer = build_analyzer(cfg)
    failed = 0
    for name in args.images:
        try:
            image = read_image(Path(name))
        except ImageError as exc:
            failed += 1
            out = {"image": name, "error": str(exc)}
            print(json.dumps(out) if args.json else f"{name}: error: {exc}", flush=True)
            continue
        result = analyzer.analyse(image)
        decision = verdict(result.faces, cfg.policy.max_people)
        if args.json:
            print(json.dumps({"image": name, "decision": decision, "faces": [f.to_json() for f in result.faces]}), flush=True)
        else:
            faces = ", ".join(f"{f.label} p_mask={f.p_mask:.2f} at {list(f.box)}" for f in result.faces) or "no face at the door"
            print(f"{name}: {decision.upper()} — {faces}", flush=True)
    return 1 if failed else 0
