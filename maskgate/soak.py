"""A soak: the gate replays a clip of visits over and over, at full speed, and its process is watched.

A day at a busy door is a few hundred visits.  :func:`run_soak` builds one clip of two visits (a
masked visitor let in, an unmasked one denied, the empty doorway between them), replays it as one
endless source (timestamps keep increasing, as from a camera), through the real gate with simulated
pins and a real event database, and samples the resident memory (RSS) and the number of open file
descriptors after every replay.  The slopes, fitted after a warm-up, say whether anything grows per
visit; the database's size says whether the retention limit (``events.max_events``) holds.

    maskgate soak --visits 600           # a day of visits (the figures in docs/faults.md)
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from maskgate.democlip import Segment, write_clip
from maskgate.edge.sources import EndOfStream, Frame, FrameSource
from maskgate.edge.sources.replay import VideoFileSource

#: the two visits of one replay: a masked visitor (let in) and an unmasked one (denied)
SCRIPT = (Segment("visitor", 1.5, "0010.jpg"), Segment("empty", 2.5), Segment("visitor", 1.5, "0012.jpg"),
          Segment("empty", 2.5))
VISITS_PER_REPLAY = 2


class LoopedSource(FrameSource):
    """A video file replayed ``times`` times as one source; frame indices and timestamps run on."""

    live = False

    def __init__(self, path: Path, fps: float, times: int, on_replay=None):
        self.inner = VideoFileSource(path, fps)
        self.name = f"{path} x{times}"
        self.times, self.fps, self.on_replay = times, fps, on_replay
        self.replays = 0
        self._offset = 0

    def open(self) -> None:
        self.inner.open()

    def read(self, timeout: float) -> Frame | None:
        try:
            frame = self.inner.read(timeout)
        except EndOfStream:
            self.replays += 1
            if self.on_replay is not None:
                self.on_replay(self.replays)
            if self.replays >= self.times:
                raise
            self._offset += self.inner._index
            self.inner.close()
            self.inner.open()
            frame = self.inner.read(timeout)
        index = frame.index + self._offset
        return Frame(frame.image, index / self.fps, index)

    def close(self) -> None:
        self.inner.close()


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


@dataclass(frozen=True)
class SoakReport:
    visits: int
    frames: int
    events: int
    unlocked: int
    denied: int
    db_events: int
    db_bytes: int
    max_events: int
    rss_kib_start: int
    rss_kib_end: int
    rss_kib_per_1000_visits: float
    rss_kib_per_1000_visits_second_half: float  # the same fit over the second half only: does growth stop?
    fds_start: int
    fds_end: int
    fds_per_1000_visits: float
    max_rss_kib: int
    wall_s: float

    def lines(self) -> list[str]:
        return [f"{k}: {v}" for k, v in asdict(self).items()]


def run_soak(visits: int, *, encounters: Path | None = None, folder: Path | None = None, max_events: int = 100000,
             warmup: float = 0.2) -> SoakReport:
    """Replay ``visits`` visits through the gate (see the module docstring) and measure."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from maskgate.edge.actuators import Hardware
    from maskgate.edge.config import Config
    from maskgate.edge.events import EventStore
    from maskgate.edge.gate import Gate

    with tempfile.TemporaryDirectory(prefix="maskgate-soak-") as tmp:
        folder = Path(folder or tmp)
        clip = write_clip(folder / "soak.avi", SCRIPT, encounters=encounters)
        db = folder / "soak.db"
        cfg = Config().replace(events={"database": str(db), "max_events": max_events})
        replays = max(1, -(-visits // VISITS_PER_REPLAY))
        samples: list[tuple[int, int, int]] = []  # (visits so far, RSS KiB, fds)
        factory = MockFactory(pin_class=MockPWMPin)

        def sample(n: int) -> None:
            for pin in factory.pins.values():
                pin.clear_states()  # the simulated pins' own history would grow with every change: not the gate's
            samples.append((n * VISITS_PER_REPLAY, rss_kib(), open_fds()))

        source = LoopedSource(clip, cfg.camera.fps, replays, on_replay=sample)
        gate = Gate(cfg, source=source, hardware=Hardware(cfg.gpio, pin_factory=factory), enable_alerts=False)
        counts = {"events": 0, "unlocked": 0, "denied": 0}

        def count(event) -> None:
            counts["events"] += 1
            if event.event in counts:
                counts[event.event] += 1

        gate.events.add_listener(count)
        t0 = time.monotonic()
        frames = gate.run()
        wall = time.monotonic() - t0
        factory.reset()
        store = EventStore(db)
        db_events = store.count()
        store.close()
        db_bytes = sum(p.stat().st_size for p in folder.glob("soak.db*"))
        steady = samples[int(len(samples) * warmup):]
        late = samples[len(samples) // 2:]
        xs = [s[0] for s in steady]
        return SoakReport(
            visits=min(source.replays, replays) * VISITS_PER_REPLAY, frames=frames,  # fewer if stopped early
            events=counts["events"], unlocked=counts["unlocked"],
            denied=counts["denied"], db_events=db_events, db_bytes=db_bytes, max_events=max_events,
            rss_kib_start=steady[0][1], rss_kib_end=steady[-1][1],
            rss_kib_per_1000_visits=round(1000 * slope(xs, [s[1] for s in steady]), 1),
            rss_kib_per_1000_visits_second_half=round(1000 * slope([s[0] for s in late], [s[1] for s in late]), 1),
            fds_start=steady[0][2], fds_end=steady[-1][2],
            fds_per_1000_visits=round(1000 * slope(xs, [s[2] for s in steady]), 2),
            max_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, wall_s=round(wall, 1),
        )
