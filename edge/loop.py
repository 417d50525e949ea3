"""The frame loop the gate and the hall monitor share.

:class:`FrameLoop` owns what does not depend on what the frames are used for: the event database,
JSON lines and notifications, opening the source (a live camera that cannot be opened is retried
with backoff), stall detection, SIGTERM/SIGINT, the systemd watchdog, and the running statistics.
Subclasses say what to do with a frame (:meth:`_on_frame`), what a fault means
(:meth:`_fault_now`), and what their outputs are (:meth:`_open_outputs`, :meth:`_close_outputs`).

Start-up order matters for a door: :meth:`_open_outputs` runs first, so the gate's relay is
de-energized before anything else can fail.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from maskgate.edge.analysis import NOTHING, FrameAnalyzer, FrameResult
from maskgate.edge.config import Config, state_dir
from maskgate.edge.events import Event, EventLog, EventStore, JsonLinesWriter
from maskgate.edge.motion import MotionGate
from maskgate.edge.sources import EndOfStream, FrameSource, unusable_frame
from maskgate.edge.status import GateStatus
from maskgate.edge.systemd_notify import SystemdNotifier
from maskgate.errors import SourceError

log = logging.getLogger(__name__)


class FrameLoop:
    #: what the loop is, for the systemd status line and the ``started`` event
    mode = "loop"
    #: the Home Assistant camera's frame slot (:class:`~maskgate.edge.alerts.camera.CameraFeed`), if the loop fills one
    camera_feed = None

    def __init__(self, cfg: Config, *, source: FrameSource, analyzer: FrameAnalyzer | None = None,
                 events_file: str | Path | None = None, on_event: Callable[[Event], None] | None = None,
                 max_frames: int | None = None, enable_alerts: bool = True):
        self.cfg = cfg
        self.source = source
        self.max_frames = max_frames
        self._stop = threading.Event()
        self._closed = False
        self.store = self.jsonl = self.notifier = None
        self.systemd = SystemdNotifier()
        self.frames = 0
        self.analysed = 0
        self._fps = 0.0
        self._infer_ms = 0.0
        self._last_wall: float | None = None
        self._last_ts = 0.0
        self._frame_clock_offset = 0.0  # frame ts - time.monotonic(): stamps inputs on the frame clock
        self._bad_frames = 0  # unusable frames in a row
        try:
            self._open_outputs()
            db = Path(cfg.events.database) if cfg.events.database else state_dir() / "events.db"
            self.store = EventStore(db, max_events=cfg.events.max_events)
            # how the last run ended (None: a new database, or one a full disk keeps from being opened)
            self._previous_end = self.store.last() if self.store.unopened is None else None
            self.events = EventLog(self.store, device=cfg.device.name, door=cfg.device.door_id)
            if events_file:
                self.jsonl = JsonLinesWriter(events_file)
                self.events.add_listener(self.jsonl)
            if on_event is not None:
                self.events.add_listener(on_event)
            self.analyzer = analyzer if analyzer is not None else self._build_analyzer()
            self.motion = MotionGate(cfg.detection.motion_threshold) if cfg.detection.motion_gate else None
            self._lowlight = None
            if cfg.detection.lowlight != "off":
                from maskgate.edge.lowlight import make_enhancer

                self._lowlight = make_enhancer(cfg.detection.lowlight)
            self._setup()
            if enable_alerts and (cfg.mqtt.enabled or cfg.email.enabled or cfg.webhook.enabled):
                from maskgate.edge.alerts import Notifier

                self.notifier = Notifier(cfg, self.store, status=self.status, on_command=self.command,
                                         camera=self.camera_feed)
                self.events.add_listener(self.notifier.wake)
        except BaseException:
            self._release()
            raise

    # -- what subclasses provide ------------------------------------------------------------------- #

    def _open_outputs(self) -> None:
        """First step of start-up (the gate: its hardware, relay de-energized)."""

    def _build_analyzer(self) -> FrameAnalyzer:
        raise NotImplementedError

    def _setup(self) -> None:
        """Last step of start-up, once events and the analyzer exist."""

    def _on_frame(self, frame) -> None:
        raise NotImplementedError

    def _fault_now(self, reason: str) -> None:
        raise NotImplementedError

    def _close_outputs(self, ts: float) -> None:
        """First step of shutdown (the gate: de-energize, record the relock)."""

    def _release_outputs(self) -> None:
        """Last step of shutdown (the gate: release the pins)."""

    def status(self) -> GateStatus:
        raise NotImplementedError

    @property
    def restarting(self) -> bool:
        """True when this loop ends to be started again with a new config (systemd is told so)."""
        return False

    def command(self, name: str, payload: dict) -> None:
        """A remote command, on the MQTT thread."""
        log.warning("ignored remote command %r", name)

    # -- control ------------------------------------------------------------------------------------ #

    def stop(self, *_args) -> None:
        """Ask the loop to end (signal handlers, other threads)."""
        self._stop.set()

    def run(self) -> int:
        """Run until the source ends, ``max_frames`` or :meth:`stop`; returns frames seen."""
        previous = self._install_signal_handlers()
        try:
            self.events.record("started", 0.0, detail=f"{self.mode}, source {self.source.name}")
            self._record_start_findings()
            if self.notifier:
                self.notifier.start()
            self._open_source()
            self.systemd.ready(f"{self.mode}: watching {self.source.name}")
            while not self._stop.is_set():
                if self.max_frames is not None and self.frames >= self.max_frames:
                    break
                try:
                    frame = self.source.read(self.cfg.camera.stall_timeout if self.source.live else 30.0)
                except EndOfStream:
                    break
                if frame is None:
                    self._camera_stalled()
                    continue
                problem = unusable_frame(frame.image)
                if problem is not None:
                    self._unusable_frame(problem)
                    continue
                self._bad_frames = 0
                self._count(frame)
                self._on_frame(frame)
                self.systemd.watchdog()
            return self.frames
        except BaseException as exc:
            if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                self._fail_now(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.close()
            self._restore_signal_handlers(previous)

    # -- helpers for subclasses ------------------------------------------------------------------- #

    def _count(self, frame) -> None:
        now = time.monotonic()
        if self._last_wall is not None and now > self._last_wall:
            dt = now - self._last_wall
            self._fps = 0.9 * self._fps + 0.1 / dt if self._fps else 1.0 / dt
        self._last_wall = now
        self._frame_clock_offset = frame.ts - now
        self._last_ts = frame.ts
        self.frames += 1

    def _analyse(self, image: np.ndarray, ts: float, scene_empty: bool) -> FrameResult:
        """Low-light step, motion gate, analysis; :data:`NOTHING` when the motion gate skips the frame."""
        if self._lowlight is not None:
            image = self._lowlight(image)
        if self.motion is not None and not self.motion.should_analyse(image, ts, scene_empty):
            return NOTHING
        result = self.analyzer.analyse(image)
        self.analysed += 1
        self._infer_ms = 0.9 * self._infer_ms + 0.1 * result.infer_ms if self._infer_ms else result.infer_ms
        return result

    def _now_on_frame_clock(self) -> float:
        return time.monotonic() + self._frame_clock_offset if self.source.live else self._last_ts

    # -- the source --------------------------------------------------------------------------------- #

    def _open_source(self) -> None:
        """Open the source; a live camera that cannot be opened is a fault, retried with backoff."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                self.source.open()
                return
            except SourceError as exc:
                if not self.source.live:
                    raise
                self._fault_now(f"camera unavailable: {exc}")
                self._stop.wait(delay)
                delay = min(delay * 2, self.cfg.camera.reconnect_max_backoff)

    def _camera_stalled(self) -> None:
        self._fault_now(f"camera stalled: no frame for {self.cfg.camera.stall_timeout:g} s")
        try:
            self.source.close()
        except Exception:  # noqa: BLE001
            log.debug("closing the stalled camera failed", exc_info=True)
        self._open_source()

    def _unusable_frame(self, problem: str) -> None:
        """A frame inference cannot use is skipped; a camera that delivers only such frames is a fault."""
        self._bad_frames += 1
        if self._bad_frames == 1:
            log.warning("skipping an unusable frame: %s", problem)
        if self._bad_frames >= max(3, round(self.cfg.camera.fps * self.cfg.camera.stall_timeout)):
            self._fault_now(f"camera unusable: {problem}")

    def _record_start_findings(self) -> None:
        """What start-up found wrong with the last run, each as a fault and its recovery (the gate runs)."""
        findings = []  # (what recovered, the fault's detail)
        if self.store.moved_aside is not None:
            findings.append(("new event database", f"event database was corrupt: moved aside to "
                                                   f"{self.store.moved_aside.name}, a new one started"))
        previous = self._previous_end
        if previous is not None and previous.event != "stopped":
            findings.append(("running again", f"the previous run ended without stopping (killed, crashed or power "
                                              f"cut) after '{previous.event}' #{previous.seq}; the relay is "
                                              "de-energized again"))
        for recovered, detail in findings:
            log.warning("%s", detail)
            self.events.record("fault", 0.0, detail=detail)
            self.events.record("recovered", 0.0, detail=f"start-up: {recovered}")

    def _fail_now(self, reason: str) -> None:
        """An unexpected error: make the outputs safe first (subclasses), then try to record it."""
        try:
            self._fault_now(reason)
        except Exception:  # noqa: BLE001 - recording is best effort here
            log.exception("could not record the fault")

    # -- shutdown ------------------------------------------------------------------------------------ #

    def close(self) -> None:
        """Make the outputs safe, record the end, release everything.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        ts = self._now_on_frame_clock()
        try:
            self._close_outputs(ts)
        except Exception:  # noqa: BLE001
            log.exception("error while making the outputs safe")
        if self.restarting:
            self.systemd.reloading(f"{self.mode}: restarting with a new config")
        else:
            self.systemd.stopping(f"{self.mode}: stopping")
        try:
            self.events.record("stopped", ts, -1, detail=f"{self.frames} frames, {self.analysed} analysed")
        except Exception:  # noqa: BLE001
            log.exception("could not record the final event")
        try:
            self.source.close()
        except Exception:  # noqa: BLE001
            log.debug("error closing the source", exc_info=True)
        self._release()

    def _release(self) -> None:
        if self.notifier is not None:
            self.notifier.stop(timeout=5.0)
            self.notifier = None
        if self.jsonl is not None:
            self.jsonl.close()
            self.jsonl = None
        if self.store is not None:
            self.store.close()
        self._release_outputs()
        self.systemd.close()

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous) -> None:
        if previous:
            for s, h in previous.items():
                signal.signal(s, h)
