"""Child processes whose peak RSS is measured: one per row, and ``maskgate run`` itself."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2

from maskgate.bench.common import bench_config


@dataclass
class Measured:
    returncode: int
    cpu_s: float
    maxrss_mb: float
    wall_s: float
    stdout: str
    stderr: str


#: Prepended to every measured child's code: on exit, the child reports the high-water mark of its own
#: memory (VmHWM).  ``ru_maxrss`` cannot be used for that on Linux: a forked child inherits the parent's
#: high-water mark, and exec keeps it, so every child of a big parent would report the parent's size.
_HWM_MARK = "maskgate-bench-vmhwm-kb"
_HWM = (
    "import atexit, sys\n"
    "def _maskgate_bench_hwm():\n"
    "    try:\n"
    "        for line in open('/proc/self/status'):\n"
    "            if line.startswith('VmHWM:'):\n"
    f"                sys.stderr.write('\\n{_HWM_MARK} ' + line.split()[1] + '\\n')\n"
    "    except OSError:\n"
    "        pass\n"
    "atexit.register(_maskgate_bench_hwm)\n"
)


def python_measured(code: str, args: list[str], *, timeout: float = 900.0) -> Measured:
    """Run ``python -c code args...`` and return its own CPU time and peak RSS.

    CPU time comes from ``os.wait4`` (this child only); peak RSS from the child's own VmHWM where
    /proc exists, else from ``ru_maxrss``.
    """
    cmd = [sys.executable, "-c", _HWM + code, *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    kb = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024
    found = re.findall(rf"^{_HWM_MARK} (\d+)$", stderr, re.M)
    if found:
        kb = int(found[-1])
        stderr = re.sub(rf"\n?{_HWM_MARK} \d+\n", "", stderr)
    return Measured(proc.returncode, usage.ru_utime + usage.ru_stime, kb / 1024.0, wall, stdout, stderr)


_CHILD = "from maskgate.bench import child_main; raise SystemExit(child_main(sys.argv[1]))"
_CLI = "from maskgate.cli import main; raise SystemExit(main(sys.argv[1:]))"


def child_main(spec_json: str) -> int:
    """In a fresh process: build one row and run it on a few frames (its peak RSS is read by the parent)."""
    spec = json.loads(spec_json)
    cv2.setNumThreads(spec["threads"])
    logging.basicConfig(level=logging.WARNING)
    row = None
    if spec["row"] != "baseline":
        from maskgate.bench.suite import build_row  # the suite imports this module

        row = build_row(spec["row"], bench_config(spec["config"], spec["threads"]), spec["threads"])
    n = 0
    for p in spec["frames"]:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if row is not None:
            row.process(img)
        n += 1
    print(json.dumps({"row": spec["row"], "frames": n}))
    return 0


def peak_rss(row: str, frames: list[Path], *, threads: int, configs: list[str]) -> dict:
    spec = {"row": row, "frames": [str(p) for p in frames], "threads": threads, "config": list(configs)}
    m = python_measured(_CHILD, [json.dumps(spec)])
    if m.returncode != 0:
        return {"error": f"child exited {m.returncode}: {_last_line(m.stderr)}"}
    return {"peak_rss_mb": round(m.maxrss_mb, 1), "frames": len(frames)}


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
