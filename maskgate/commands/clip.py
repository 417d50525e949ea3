"""Write a doorway clip (MJPG .avi) from ../shared/data/encounters frames, for replaying with `run --source`.

  maskgate clip --out doorway.avi                                  the default demo script
  maskgate clip --out visit.avi empty:2 visitor:0019.jpg:4 empty:3 visitor:0001.jpg:4

A visitor segment shows one encounter frame with a camera's small movements and noise; an empty
segment shows a drawn empty doorway.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(p):
    p.add_argument("segments", nargs="*", metavar="SEGMENT", help="empty:SECONDS or visitor:FRAME.jpg:SECONDS")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)


def main(args) -> int:
    from maskgate.democlip import DEFAULT_SCRIPT, Segment, write_clip

    script = [Segment.parse(s) for s in args.segments] or list(DEFAULT_SCRIPT)
    path = write_clip(args.out, script, fps=args.fps, seed=args.seed)
    seconds = sum(s.seconds for s in script)
    print(f"{path}: {len(script)} segments, {seconds:g} s at {args.fps:g} fps")
    return 0
