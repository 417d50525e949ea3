"""The gate as a subprocess: its peak RSS on a visit, and the CPU cost of an idle doorway."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import cv2

from maskgate.errors import MaskgateError
from maskgate.bench.common import CLIP_FPS, FrameSet
from maskgate.bench.processes import _CLI, Measured, _last_line, python_measured


def _toml_str(s: str) -> str:
    return json.dumps(str(s))  # a JSON string is a valid TOML basic string for paths and names


def gate_config(tmp: Path, threads: int) -> Path:
    """A config layered over the user's: events in ``tmp``, simulated pins, no notifications."""
    path = tmp / "bench.toml"
    path.write_text(
        f"[camera]\nfps = {CLIP_FPS}\n"
        f"[models]\nthreads = {threads}\n"
        f"[events]\ndatabase = {_toml_str(tmp / 'events.db')}\nsnapshots = false\n"
        "[gpio]\npin_factory = \"mock\"\n"
        "[mqtt]\nenabled = false\n[email]\nenabled = false\n[webhook]\nenabled = false\n"
    )
    return path


_STOPPED = re.compile(r"stopped after (\d+) frames \((\d+) analysed\)")


def _gate_run(configs: list[str], clip: Path, *extra: str) -> tuple[Measured, int, int]:
    args = ["-q", "run"]
    for c in configs:
        args += ["--config", str(c)]
    args += ["--source", str(clip), *extra]
    m = python_measured(_CLI, args)  # `maskgate run`, in a child that reports its peak RSS
    if m.returncode != 0:
        raise MaskgateError(f"`maskgate run` failed ({m.returncode}): {_last_line(m.stderr)}")
    found = _STOPPED.search(m.stderr)
    frames, analysed = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    return m, frames, analysed


def measure_gate_rss(configs: list[str], tmp: Path, frames: FrameSet) -> dict:
    """Peak RSS of ``maskgate run`` replaying a clip with one visitor (both models run)."""
    from maskgate.democlip import Segment, write_clip

    script = [Segment("empty", 1.0), Segment("visitor", 4.0, frames.names[0]), Segment("empty", 1.0)]
    clip = write_clip(tmp / "visit.avi", script, fps=CLIP_FPS, encounters=frames.folder)
    n = int(round(sum(s.seconds for s in script) * CLIP_FPS))
    m, seen, analysed = _gate_run(configs, clip, "--max-frames", str(n))
    return {"peak_rss_mb": round(m.maxrss_mb, 1), "frames": seen, "analysed": analysed,
            "clip": f"empty 1 s, visitor {frames.names[0]} 4 s, empty 1 s at {CLIP_FPS:g} fps, --max-frames {n}"}


def measure_idle(configs: list[str], tmp: Path, seconds: float) -> dict:
    """CPU time of the gate watching an empty doorway, per minute of (real-time) video."""
    from maskgate.democlip import Segment, write_clip

    clip = write_clip(tmp / "empty.avi", [Segment("empty", seconds)], fps=CLIP_FPS, encounters=tmp)
    start, _, _ = _gate_run(configs, clip, "--max-frames", "1")
    idle, frames, analysed = _gate_run(configs, clip, "--realtime")
    watched = (frames - 1) / CLIP_FPS
    cpu = max(idle.cpu_s - start.cpu_s, 0.0)
    pct = 100.0 * cpu / watched if watched > 0 else None
    decode_pct = _decode_cost(clip)
    return {
        "clip_seconds": round(frames / CLIP_FPS, 2), "fps": CLIP_FPS, "frames": frames, "analysed": analysed,
        "cpu_s_total": round(idle.cpu_s, 3), "cpu_s_startup_and_first_frame": round(start.cpu_s, 3),
        "wall_s": round(idle.wall_s, 2),
        "cpu_s_per_minute": round(60.0 * cpu / watched, 3) if watched > 0 else None,
        "cpu_percent_of_one_core": round(pct, 2) if pct is not None else None,
        "replay_decode_percent_of_one_core": decode_pct,
        "cpu_percent_without_replay_decode": round(pct - decode_pct, 2) if pct is not None and decode_pct else None,
        "peak_rss_mb": round(idle.maxrss_mb, 1),
        "method": "maskgate run --realtime on an empty-doorway clip (democlip); CPU = user+sys of that process "
                  "minus a run of the same clip with --max-frames 1 (start-up, first frame, shutdown), over "
                  "the seconds of the remaining frames. The replay decodes MJPG frames, which a Pi camera does "
                  "not need; that decode cost, measured separately, is also reported.",
    }


def _decode_cost(clip: Path) -> float | None:
    """CPU % of one core that decoding ``clip`` at ``CLIP_FPS`` costs (replays only; a camera needs none of it)."""
    cap = cv2.VideoCapture(str(clip))
    if not cap.isOpened():
        return None
    t0 = time.process_time()
    n = 0
    while cap.read()[0]:
        n += 1
    cpu = time.process_time() - t0
    cap.release()
    return round(100.0 * cpu / (n / CLIP_FPS), 2) if n else None
