"""Measure speed side by side: the gate's per-frame path against the seeds' pipeline, cv2.dnn and float models.

  maskgate bench [--frames DIR] [--threads N] [--json OUT]

Times, in one process and on the same frames (default ../shared/data/encounters), after a warm-up:
ours (int8 detector + int8 classifier, exactly what `maskgate run` analyses), the seeds' pipeline
(cv2.dnn res10 300x300 + Keras MobileNetV2 `predict` per face; needs the TensorFlow extra, skipped
with a note otherwise), cv2.dnn res10 alone (300x300, and at the gate's detector size), ours with
the 300x300 int8 detector, and our float TFLite models.  For each: median and p95 per-frame time, frames per second, peak RSS (a
child process per row), model bytes and other / ours.  Then: where ours spends its time, int8 vs
float gate rates, the peak RSS of `maskgate run`, the CPU cost of an idle doorway (an empty
clip replayed in real time), and the gate's frame rate with its installer's page closed and open.  Every runtime uses --threads threads (default 1: the targets' setting).
No GPIO is driven: the gate runs use simulated pins and a temporary event database.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_arguments(p):
    p.add_argument("--frames", type=Path, metavar="DIR",
                   help="folder of frames (*.jpg; labels.json adds int8 vs float gate rates); "
                        "default: ../shared/data/encounters")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="threads for every runtime (default: %(default)s)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the report as JSON")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N frames")
    p.add_argument("--warmup", type=int, default=5, metavar="N", help="untimed calls per row first (default: %(default)s)")
    p.add_argument("--block", type=int, default=10, metavar="N",
                   help="interleave the rows in blocks of N frames, so that other load falls on all rows alike "
                        "(default: %(default)s; 0: each row over all frames in turn)")
    p.add_argument("--idle-seconds", type=float, default=60.0, metavar="S",
                   help="length of the empty-doorway clip replayed in real time (default: %(default)s; 0 skips)")
    p.add_argument("--web-rounds", type=int, default=3, metavar="N",
                   help="rounds of the gate with its installer's page closed and open (default: %(default)s; 0 skips)")
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="gate config (which models, thresholds)")
    p.add_argument("--skip", default="", metavar="WHAT",
                   help="comma-separated rows or measurements to leave out: seeds, float_tflite, cv2_res10, "
                        "cv2_res10_gate_size, ours_300x300, rss, gate_rss, idle, stages, eval, web")


def main(args) -> int:
    from maskgate import bench, datasets
    from maskgate.errors import ConfigError

    skip = frozenset(s.strip() for s in args.skip.split(",") if s.strip())
    unknown = skip - set(bench.ROWS) - set(bench.EXTRAS)
    if "ours" in skip:
        raise ConfigError("--skip", "'ours' is what the other rows are compared with; it cannot be skipped")
    if unknown:
        raise ConfigError("--skip", f"unknown {', '.join(sorted(unknown))}; choose from "
                          f"{', '.join([*list(bench.ROWS)[1:], *bench.EXTRAS])}")
    if args.threads < 1:
        raise ConfigError("--threads", f"must be >= 1, got {args.threads}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit", f"must be >= 1, got {args.limit}")
    frames = args.frames or datasets.shared_dir() / "data" / "encounters"
    opts = bench.BenchOptions(frames_dir=frames, threads=args.threads, warmup=max(0, args.warmup), limit=args.limit,
                              block=max(0, args.block), configs=list(args.config), idle_seconds=args.idle_seconds,
                              skip=skip, web_rounds=max(0, args.web_rounds))

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"bench: {msg}", file=sys.stderr, flush=True)

    report = bench.run_bench(opts, progress)
    print(bench.format_report(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report: {args.json}")
    return 0
