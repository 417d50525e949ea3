"""The gate with the installer's page open against the page closed: its frame rate, side by side.

The gate replays a doorway clip with two visitors as fast as it can (every frame analysed, so the
measure is throughput: CPU the page takes is frames the gate loses), in one process with the page
served; rounds alternate closed / open.  "Open" is a watcher in another process (a browser is not
in the gate's process either) doing what the page does: the live image as fast as the server gives
it (``web.live_fps``), the status every second, the events every two seconds.

On a shared machine the wall-clock frame rate mostly measures the other load, so the drop is
computed from the gate process's CPU time per frame (its server threads included): a gate that
is CPU-bound runs at 1 / (CPU per frame).  Both are reported.  The target: a drop of at most 10 %.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from maskgate.bench.common import CLIP_FPS, FrameSet

WEB_TARGET_DROP_PERCENT = 10.0


class PageWatcher(threading.Thread):
    """Polls the page's API like the browser does, with the viewer's token."""

    def __init__(self, url: str, token: str):
        super().__init__(name="bench-page-watcher", daemon=True)
        self.url, self.token = url, token
        self.images = 0
        self.requests = 0
        self._done = threading.Event()

    def _get(self, path: str) -> tuple[dict, bytes]:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            self.requests += 1
            return dict(r.headers), r.read()

    def run(self) -> None:
        seq, next_status, next_events = 0, 0.0, 0.0
        while not self._done.is_set():
            now = time.monotonic()
            try:
                if now >= next_status:
                    self._get("api/status")
                    next_status = now + 1.0
                if now >= next_events:
                    self._get("api/events?limit=50")
                    next_events = now + 2.0
                headers, _ = self._get(f"api/live.jpg?after={seq}")
                seq = int(headers.get("X-Frame-Seq", seq))
                self.images += 1
            except OSError:  # 503 before the first frame, or the gate between runs
                self._done.wait(0.05)

    def stop(self) -> None:
        self._done.set()
        self.join(15)


def watcher_main(url: str, token: str) -> int:
    """A watcher process: polls until its standard input closes; prints how many images it got."""
    w = PageWatcher(url, token)
    w.start()
    sys.stdin.read()
    w.stop()
    print(w.images, flush=True)
    return 0


_WATCHER = "import sys; from maskgate.bench.web_page import watcher_main; raise SystemExit(watcher_main(*sys.argv[1:]))"


def measure_web_page(configs: list[str], tmp: Path, frames: FrameSet, rounds: int) -> dict:
    """Frames per second of the gate over the same clip, page closed and open, ``rounds`` of each."""
    from maskgate.democlip import Segment, write_clip
    from maskgate.edge import config
    from maskgate.edge.gate import Gate
    from maskgate.edge.sources import open_source
    from maskgate.edge.web import WebServer
    from maskgate.edge.web.tokens import load_or_create

    secret = tmp / "web-secret.toml"
    cfg = config.load(configs).replace(web={"enabled": True, "bind": "127.0.0.1", "port": 0, "secret_file": str(secret)},
                                       detection={"motion_gate": False})
    tokens = load_or_create(secret)
    script = [Segment("empty", 2.0), Segment("visitor", 8.0, frames.names[0]), Segment("empty", 2.0),
              Segment("visitor", 8.0, frames.names[-1])]
    clip = write_clip(tmp / "web-visits.avi", script, fps=CLIP_FPS, encounters=frames.folder)
    server = WebServer(cfg)
    server.start()
    runs: dict[str, list[tuple[float, float]]] = {"closed": [], "open": []}  # (fps, CPU ms per frame)
    drawn, received = [], []
    try:
        for r in range(rounds):
            for mode in (("closed", "open") if r % 2 == 0 else ("open", "closed")):
                gate = Gate(cfg, source=open_source(str(clip), cfg.camera), enable_alerts=False)
                server.attach(gate)
                watcher = None
                if mode == "open":
                    watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, server.url, tokens.viewer],
                                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                    deadline = time.monotonic() + 30
                    while not server.live.armed and time.monotonic() < deadline:  # the first request came
                        time.sleep(0.02)
                offered = server.live.offered
                t0, c0 = time.perf_counter(), time.process_time()
                n = gate.run()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                if watcher is not None:
                    out, _ = watcher.communicate("", timeout=60)
                    received.append(int(out.strip() or 0))
                    drawn.append(server.live.offered - offered)
                runs[mode].append((n / wall, 1000.0 * cpu / n))
    finally:
        server.stop()
    fps = {m: statistics.median(f for f, _ in v) for m, v in runs.items()}
    cpu = {m: statistics.median(c for _, c in v) for m, v in runs.items()}
    return {
        "rounds": rounds, "frames": n, "live_fps": cfg.web.live_fps,
        "cpu_ms_per_frame_page_closed": round(cpu["closed"], 2), "cpu_ms_per_frame_page_open": round(cpu["open"], 2),
        "fps_drop_percent": round(100.0 * (1.0 - cpu["closed"] / cpu["open"]), 2),
        "fps_page_closed": round(fps["closed"], 2), "fps_page_open": round(fps["open"], 2),
        "wall_fps_drop_percent": round(100.0 * (1.0 - fps["open"] / fps["closed"]), 2),
        "per_round": {m: [{"fps": round(f, 2), "cpu_ms_per_frame": round(c, 2)} for f, c in v] for m, v in runs.items()},
        "live_frames_drawn_per_open_run": drawn, "live_images_received_per_open_run": received,
        "method": "one process: the gate replays a clip with two visitors as fast as it can (motion gate off: every "
                  "frame analysed), its page served; rounds alternate page closed / open, where open is a client "
                  "process polling the live image, the status (1 s) and the events (2 s) with the viewer's token. "
                  "fps_drop_percent = 1 - (CPU per frame closed) / (CPU per frame open), CPU = the gate process's "
                  "user+sys time (its page's threads included) over each run, medians over the rounds; the "
                  "wall-clock frame rates are reported too but on a shared machine they measure the other load.",
    }
