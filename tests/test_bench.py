"""`maskgate bench`: the report's shape on a few frames, its helpers, and real-time replay.

No timing is asserted anywhere: speed depends on the machine; the numbers live in benchmarks/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from maskgate import bench
from maskgate.edge.sources import EndOfStream, Frame, FrameSource
from maskgate.edge.sources.replay import PacedSource
from maskgate.errors import SourceError

ROWS = ("ours", "seeds", "cv2_res10", "float_tflite")


def check_report_shape(report: dict, frames: int, threads: int = 1) -> None:
    """What every `maskgate bench --json` report has, whatever the machine."""
    assert report["threads"] == threads
    assert report["frames"] == frames
    pipelines = report["pipelines"]
    for name in ROWS:
        assert name in pipelines, name
    assert "skipped" not in pipelines["ours"]
    for name, row in pipelines.items():
        if "skipped" in row:
            assert isinstance(row["skipped"], str) and row["skipped"].strip(), f"{name}: a skipped row says why"
            continue
        for key in ("median_ms", "p95_ms", "fps", "model_bytes", "peak_rss_mb"):
            assert isinstance(row[key], (int, float)) and row[key] > 0, (name, key, row.get(key))
        assert row["p95_ms"] >= row["median_ms"]
        assert row["timed_frames"] == frames
        if name != "ours":
            assert row["ratio_median_vs_ours"] > 0
            assert report["ratios"][f"{name}/ours"] == row["ratio_median_vs_ours"]
    gate = report["gate"]
    assert gate["rss"]["peak_rss_mb"] > 0
    idle = gate["idle"]
    assert idle["frames"] > 1 and idle["cpu_s_per_minute"] >= 0 and idle["cpu_percent_of_one_core"] >= 0
    web = gate["web_page"]
    assert web["rounds"] == len(web["per_round"]["open"]) == len(web["per_round"]["closed"]) >= 1
    assert web["cpu_ms_per_frame_page_closed"] > 0 and web["cpu_ms_per_frame_page_open"] > 0
    assert all(n >= 1 for n in web["live_frames_drawn_per_open_run"])  # the page was really watched
    assert all(n >= 1 for n in web["live_images_received_per_open_run"])
    for key in ("seeds_over_ours", "cv2_res10_over_ours", "idle_cpu_percent", "gate_peak_rss_mb", "int8_vs_float_points",
                "web_page_fps_drop_percent"):
        assert key in report["targets"]
        assert report["targets"][key]["met"] in (True, False, None)
    stages = report["stages"]
    assert stages["detector_invoke_ms"] > 0 and stages["preprocess_resize_ms"] > 0
    ev = report["eval"]["bench_frames"]
    assert "skipped" in ev or ev["frames"] == frames


@pytest.mark.slow
def test_bench_on_three_frames_reports_every_row(shared, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    labels = json.loads((shared / "data" / "encounters" / "labels.json").read_text())
    names = ["0001.jpg", "0004.jpg", "0019.jpg"]  # without_mask, mask_weared_incorrect, with_mask
    for n in names:
        shutil.copy(shared / "data" / "encounters" / n, frames / n)
    (frames / "labels.json").write_text(json.dumps({n: labels[n] for n in names}))
    out = tmp_path / "bench.json"
    env = {**os.environ, "MASKGATE_SHARED": str(shared)}
    r = subprocess.run([sys.executable, "-m", "maskgate", "bench", "--frames", str(frames), "--warmup", "1",
                        "--idle-seconds", "2", "--web-rounds", "1", "--json", str(out)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    check_report_shape(report, frames=3)
    assert "/ ours" in r.stdout and "idle doorway" in r.stdout and "installer's page" in r.stdout
    for name in ROWS:
        assert report["pipelines"][name]["title"] in r.stdout


def test_a_bad_skip_is_one_clear_error(capsys):
    from maskgate.cli import main

    assert main(["bench", "--skip", "ours"]) == 1
    assert "--skip" in capsys.readouterr().err
    assert main(["bench", "--skip", "nonsense"]) == 1
    assert "nonsense" in capsys.readouterr().err


def test_summarise_median_p95_and_fps():
    s = bench.summarise([10.0] * 19 + [30.0])
    assert s["median_ms"] == 10.0
    assert 10.0 < s["p95_ms"] <= 30.0
    assert s["fps"] == pytest.approx(1000 * 20 / (19 * 10 + 30), rel=1e-3)
    assert s["timed_frames"] == 20


def test_format_report_shows_skipped_rows_with_their_reason():
    report = {
        "threads": 1, "frames": 3, "frames_dir": "x", "frame_size": [640, 480], "warmup": 1, "block": 10,
        "machine": {"cpu": "cpu", "cores": 2, "machine": "x86_64", "board": None},
        "load_average_at_start": [0.1, 0.1, 0.1], "load_average_at_end": [0.1, 0.1, 0.1],
        "pipelines": {
            "ours": {"title": bench.ROWS["ours"], "median_ms": 10.0, "p95_ms": 12.0, "fps": 95.0, "model_bytes": 3_000_000,
                     "peak_rss_mb": 80.0},
            "cv2_res10": {"title": bench.ROWS["cv2_res10"], "median_ms": 30.0, "p95_ms": 33.0, "fps": 32.0,
                          "model_bytes": 2_700_000, "peak_rss_mb": 120.0},
            "seeds": {"title": bench.ROWS["seeds"], "skipped": "TensorFlow is not installed"},
        },
    }
    bench._add_ratios(report)
    report["targets"] = bench._targets(report)
    text = bench.format_report(report)
    assert "skipped: TensorFlow is not installed" in text
    assert report["pipelines"]["cv2_res10"]["ratio_median_vs_ours"] == 3.0
    assert report["targets"]["cv2_res10_over_ours"]["met"] is True
    assert report["targets"]["seeds_over_ours"]["met"] is None  # skipped: not measured, not "missed"


def test_int8_vs_float_points():
    a = {"false_accept_rate": 0.0141, "false_reject_rate": 0.05}
    b = {"false_accept_rate": 0.0141, "false_reject_rate": 0.0458}
    c = bench.compare_int8_float(a, b, 0.99)
    assert c["false_accept_points"]["int8_minus_float"] == 0.0
    assert c["false_reject_points"]["int8_minus_float"] == pytest.approx(0.42)
    assert c["within_target"] is True


def test_child_peak_rss_is_the_childs_own():
    """A forked child inherits its parent's ru_maxrss on Linux; the child's own high-water mark is used instead."""
    ballast = np.ones(200_000_000, np.uint8)  # this process is now at least 200 MB
    small = bench.python_measured("pass", [])
    big = bench.python_measured("import numpy as np; x = np.ones(120_000_000, np.uint8)", [])
    del ballast
    assert small.returncode == 0 and big.returncode == 0
    assert small.maxrss_mb < 100  # ru_maxrss would say >= 200 here
    assert big.maxrss_mb - small.maxrss_mb > 80
    assert small.cpu_s >= 0 and "vmhwm" not in small.stderr


# -- real-time replay ---------------------------------------------------------------------------- #


class _Frames(FrameSource):
    def __init__(self, n: int, fps: float, live: bool = False):
        self.n, self.fps, self.live, self.i = n, fps, live, 0
        self.name = "fake"

    def open(self):
        self.i = 0

    def read(self, timeout):
        if self.i >= self.n:
            raise EndOfStream("done")
        f = Frame(np.zeros((4, 4, 3), np.uint8), self.i / self.fps, self.i)
        self.i += 1
        return f


class _Clock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(round(s, 6))
        self.now += s


def test_paced_source_delivers_frames_at_their_timestamps():
    clock = _Clock()
    src = PacedSource(_Frames(4, fps=10.0), clock=clock, sleep=clock.sleep)
    src.open()
    got = [src.read(1.0).index]
    clock.now += 0.03  # 30 ms of work on the first frame: the next waits 70 ms
    got.append(src.read(1.0).index)
    clock.now += 0.25  # a slow frame: late frames come at once, none is dropped
    got += [src.read(1.0).index, src.read(1.0).index]
    with pytest.raises(EndOfStream):
        src.read(1.0)
    assert got == [0, 1, 2, 3]
    assert clock.sleeps == [pytest.approx(0.07)]


def test_paced_source_refuses_a_live_camera():
    with pytest.raises(SourceError, match="live camera"):
        PacedSource(_Frames(1, 10.0, live=True))
