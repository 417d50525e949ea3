"""One benchmark run: build the rows, time them, then the gate's own measurements."""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from maskgate.bench.common import CLIP_FPS, METHOD, ROWS, FrameSet, Row, Skipped, bench_config, detector_size
from maskgate.bench.cv2_dnn import row_cv2
from maskgate.bench.eval_rates import _eval_section
from maskgate.bench.float_tflite import row_float
from maskgate.bench.gate_runs import gate_config, measure_gate_rss, measure_idle
from maskgate.bench.ours import row_ours, row_ours_300
from maskgate.bench.processes import peak_rss
from maskgate.bench.report import _targets
from maskgate.bench.seeds import row_seeds
from maskgate.bench.timing import stage_breakdown, summarise, time_rows
from maskgate.bench.web_page import measure_web_page


@dataclass
class BenchOptions:
    frames_dir: Path
    threads: int = 1
    warmup: int = 5
    limit: int | None = None
    block: int = 10
    configs: list[str] = field(default_factory=list)
    idle_seconds: float = 60.0
    rss_frames: int = 10
    web_rounds: int = 3
    skip: frozenset = frozenset()


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        cpu = fields.get("model name") or fields.get("hardware") or cpu
    except OSError:
        pass
    board = None
    try:
        board = Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode(errors="replace")
    except OSError:
        pass
    info = {"machine": platform.machine(), "cpu": cpu, "cores": os.cpu_count(), "board": board,
            "maskgate": _source_revision(),
            "python": platform.python_version(), "opencv": cv2.__version__, "numpy": np.__version__,
            "system": f"{platform.system()} {platform.release()}"}
    try:
        from importlib.metadata import version

        info["ai_edge_litert"] = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - informative only
        pass
    return info


def _source_revision() -> str:
    """``maskgate <version>``, plus the git commit when run from a checkout (``+dirty`` with local changes)."""
    from maskgate import __version__

    text = f"maskgate {__version__}"
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if sha.returncode == 0 and sha.stdout.strip():
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            text += f" (git {sha.stdout.strip()}{'+dirty' if dirty else ''})"
    except (OSError, subprocess.SubprocessError):
        pass
    return text


def _model_files(analyzer) -> dict:
    import hashlib

    out = {}
    for role, model in (("detector", analyzer.detector.model), ("classifier", analyzer.classifier.model)):
        out[role] = {"file": model.path.name, "sha256": hashlib.sha256(model.path.read_bytes()).hexdigest()}
    return out


def run_bench(opts: BenchOptions, progress: Callable[[str], None] = lambda s: None) -> dict:
    threads = opts.threads
    frames = FrameSet.load(opts.frames_dir, opts.limit)
    cfg = bench_config(opts.configs, threads)
    first = frames.image(0)
    saved_threads = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    report: dict = {
        "threads": threads,
        "frames": len(frames),
        "frames_dir": str(frames.folder),
        "frame_size": [int(first.shape[1]), int(first.shape[0])],
        "warmup": opts.warmup,
        "block": opts.block,
        "machine": machine_info(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "pipelines": {},
    }
    try:
        rows: dict[str, Row] = {}
        for name in ROWS:
            if name in opts.skip:
                report["pipelines"][name] = {"title": ROWS[name], "skipped": "--skip"}
                continue
            try:
                progress(f"loading {name}" + (" (TensorFlow)" if name == "seeds" else ""))
                rows[name] = build_row(name, cfg, threads)
            except Skipped as exc:
                report["pipelines"][name] = {"title": ROWS[name], "skipped": str(exc)}
        times, outputs = time_rows(rows, frames, warmup=opts.warmup, block=opts.block, progress=progress)

        for name in ROWS:
            if name not in rows:
                continue
            row = rows[name]
            entry = {"title": ROWS[name], "detail": row.detail, **summarise(times[name]),
                     "model_bytes": row.model_bytes,
                     "detections_per_frame": round(float(np.mean([row.faces(o) for o in outputs[name]])), 3)}
            if "note" in row.info:
                entry["note"] = row.info["note"]
            if "analyzer" in row.info:
                entry["models"] = _model_files(row.info["analyzer"])
            report["pipelines"][name] = entry
        report["pipelines"] = {n: report["pipelines"][n] for n in ROWS if n in report["pipelines"]}
        _add_ratios(report)

        if "stages" not in opts.skip:
            progress("stage breakdown of ours")
            report["stages"] = stage_breakdown(rows["ours"].info["analyzer"], frames)

        if "eval" not in opts.skip:
            report["eval"] = _eval_section(cfg, frames, outputs)
    finally:
        cv2.setNumThreads(saved_threads)

    with tempfile.TemporaryDirectory(prefix="maskgate-bench-") as tmpdir:
        tmp = Path(tmpdir)
        gate_configs = [*opts.configs, str(gate_config(tmp, threads))]
        if "rss" not in opts.skip:
            sample = frames.paths[: max(1, opts.rss_frames)]
            report["baseline_rss_mb"] = peak_rss("baseline", sample, threads=threads, configs=opts.configs).get("peak_rss_mb")
            for name, entry in report["pipelines"].items():
                if "skipped" in entry:
                    continue
                progress(f"peak RSS of {name} (child process)")
                got = peak_rss(name, sample, threads=threads, configs=opts.configs)
                entry["peak_rss_mb"] = got.get("peak_rss_mb")
                if "error" in got:
                    entry["peak_rss_error"] = got["error"]
        report["gate"] = {}
        if "gate_rss" not in opts.skip:
            progress("peak RSS of maskgate run (subprocess)")
            report["gate"]["rss"] = measure_gate_rss(gate_configs, tmp, frames)
        if "idle" not in opts.skip and opts.idle_seconds > 0:
            progress(f"idle doorway: maskgate run --realtime on a {opts.idle_seconds:g} s empty clip")
            report["gate"]["idle"] = idle = measure_idle(gate_configs, tmp, opts.idle_seconds)
            st = report.get("stages")
            if st and idle["frames"] > 1 and st.get("detector_run_ms"):
                per = st["detector_run_ms"] + (st.get("decode_nms_ms") or 0.0)
                watched_ms = 1000.0 * (idle["frames"] - 1) / CLIP_FPS
                idle["detector_percent_estimate"] = round(100.0 * max(idle["analysed"] - 1, 0) * per / watched_ms, 2)
        if "web" not in opts.skip and opts.web_rounds > 0:
            progress(f"the gate with its page closed and open, {opts.web_rounds} rounds each")
            report["gate"]["web_page"] = measure_web_page(gate_configs, tmp, frames, opts.web_rounds)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = _targets(report)
    report["method"] = METHOD
    return report


def _add_ratios(report: dict) -> None:
    p = report["pipelines"]
    ours = p.get("ours", {})
    report["ratios"] = {}
    for name, entry in p.items():
        if name == "ours" or "skipped" in entry or "median_ms" not in ours:
            continue
        entry["ratio_median_vs_ours"] = round(entry["median_ms"] / ours["median_ms"], 2)
        entry["ratio_p95_vs_ours"] = round(entry["p95_ms"] / ours["p95_ms"], 2)
        report["ratios"][f"{name}/ours"] = entry["ratio_median_vs_ours"]


def build_row(name: str, cfg, threads: int) -> Row:
    if name == "ours":
        return row_ours(cfg)
    if name == "ours_300x300":
        return row_ours_300(cfg)
    if name == "float_tflite":
        return row_float(cfg)
    if name == "cv2_res10":
        return row_cv2()
    if name == "cv2_res10_gate_size":
        from maskgate.edge.model_files import model_paths

        return row_cv2(*detector_size(model_paths(cfg)[0]), name)
    if name == "seeds":
        return row_seeds(threads)
    raise ValueError(f"unknown benchmark row {name!r}")
