"""Draw faces, mask labels and distancing on photos: pictures for people to look at.

  maskgate annotate IMAGE|DIR... --out DIR [--config FILE] [--min-distance M] [--limit N]

Each picture is written to DIR/<name>.jpg with every face boxed and labelled ("mask 97%" /
"no mask 88%"; blue / vermillion, a palette that survives colour blindness), pairs of people
closer than --min-distance (default monitor.min_distance_m) joined by a dashed line with their
distance, and a header with the summary and a legend.  Small photos are enlarged so that labels
stay readable.  Distances are estimated from face size (a face is monitor.face_width_cm wide,
the camera sees monitor.horizontal_fov_deg across): near and far people alike.

Faces are found as in monitor mode: monitor.detector, faces from monitor.min_face pixels.
DIR/summary.json holds, per picture, its faces (box, score, label, p_mask, position in metres),
the counts and the pairs.  A folder is read non-recursively; a Pascal VOC folder (images/ +
annotations/, like ../shared/data/wild) is read from its images/.  A picture that cannot be read
is reported on one line and skipped; the exit status is then 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_arguments(p):
    p.add_argument("inputs", nargs="+", metavar="IMAGE|DIR", help="pictures, or folders of pictures")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the annotated pictures go")
    p.add_argument("--config", action="append", default=[], metavar="FILE")
    p.add_argument("--min-distance", type=float, metavar="M", help="metres; default: monitor.min_distance_m")
    p.add_argument("--limit", type=int, metavar="N", help="annotate only the first N pictures")
    p.add_argument("--min-size", type=int, default=None, metavar="PX",
                   help="enlarge smaller pictures to this longest side (default 1280; 0 keeps the size)")


def collect(inputs: list[str]) -> list[Path]:
    """The pictures named by ``inputs``, in order: files as given, folders sorted by name."""
    from maskgate.edge.sources.replay import IMAGE_SUFFIXES
    from maskgate.errors import ImageError

    out: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            folder = path / "images" if (path / "images").is_dir() and (path / "annotations").is_dir() else path
            found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(f"no pictures in {folder}")
            out += found
        else:
            out.append(path)  # a missing or unreadable file is reported when it is read
    return out


def output_name(path: Path, taken: set[str]) -> str:
    name = f"{path.stem}.jpg"
    n = 2
    while name in taken:
        name = f"{path.stem}_{n}.jpg"
        n += 1
    taken.add(name)
    return name


def main(args) -> int:
    import cv2

    from maskgate.edge import config as config_mod
    from maskgate.edge.draw import DEFAULT_MIN_LONG_SIDE, draw_crowd
    from maskgate.edge.monitor import analyse_crowd, build_monitor_analyzer, monitor_detector
    from maskgate.edge.sources.replay import read_image
    from maskgate.errors import ConfigError, ImageError

    cfg = config_mod.load(args.config)
    if args.min_distance is not None:
        cfg = cfg.replace(monitor={"min_distance_m": args.min_distance})  # validated like the config key
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit", f"must be at least 1, got {args.limit}")
    min_size = DEFAULT_MIN_LONG_SIDE if args.min_size is None else args.min_size
    pictures = collect(args.inputs)[: args.limit]
    inputs = {p.resolve() for p in pictures}
    if args.out.resolve() in {p.parent for p in inputs}:
        raise ImageError(f"--out {args.out} holds input pictures: choose another folder")
    args.out.mkdir(parents=True, exist_ok=True)
    analyzer = build_monitor_analyzer(cfg)
    mon = cfg.monitor
    summary = {
        "settings": {"detector": Path(monitor_detector(cfg)).name, "tiles": mon.tiles, "min_face": analyzer.min_face,
                     "score_threshold": analyzer.detector.score_threshold, "mask_threshold": analyzer.mask_threshold,
                     "face_width_cm": mon.face_width_cm, "horizontal_fov_deg": mon.horizontal_fov_deg,
                     "min_distance_m": mon.min_distance_m},
        "pictures": [], "errors": [],
    }
    taken: set[str] = set()
    totals = [0, 0, 0]
    for path in pictures:
        try:
            image = read_image(path)
        except ImageError as exc:
            print(f"{path}: error: {exc}", file=sys.stderr, flush=True)
            summary["errors"].append({"image": str(path), "error": str(exc)})
            continue
        result, report = analyse_crowd(analyzer, image, cfg)
        picture = draw_crowd(image, result.faces, report, min_long_side=min_size, note=path.name)
        out = args.out / output_name(path, taken)
        if not cv2.imwrite(str(out), picture, [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise ImageError(f"cannot write {out}")
        h, w = image.shape[:2]
        summary["pictures"].append({
            "image": str(path), "output": str(out), "width": w, "height": h,
            "output_width": picture.shape[1], "output_height": picture.shape[0],
            **report.to_json(),
            "faces": [{**f.to_json(), "position_m": list(pos)} for f, pos in zip(result.faces, report.positions)],
        })
        totals[0] += report.people
        totals[1] += report.masked
        totals[2] += report.violations
        print(f"{path.name}: {report.summary()} -> {out}", flush=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    done = len(summary["pictures"])
    share = f" ({100 * totals[1] / totals[0]:.0f}% masked)" if totals[0] else ""
    print(f"{done} pictures annotated in {args.out}: {totals[0]} people{share}, {totals[2]} pairs too close; "
          f"summary: {args.out / 'summary.json'}", file=sys.stderr)
    if summary["errors"]:
        print(f"{len(summary['errors'])} pictures could not be read", file=sys.stderr)
        return 1
    return 0
