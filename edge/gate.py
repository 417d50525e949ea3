"""The gate: frames → faces → policy → lock, with events, alerts and the watchdog.

Reads top to bottom as the steps a door goes through:

1. ``Gate.__init__``  — hardware first (the relay comes up de-energized: locked), then the event
   store, models, frame source, notifications.  Any error here leaves the lock de-energized.
2. ``Gate.run``       — the frame loop: read a frame (a stall is a fault: lock, reconnect with
   backoff), take button / door / remote inputs, analyse (unless the motion gate says the doorway
   is empty and still), apply the policy, drive the lock and lights, feed the watchdog.
3. ``Gate.close``     — on every way out (end of a replayed file, SIGTERM, Ctrl-C, an exception):
   de-energize the relay first, then record the final events and release everything.

The per-frame path allocates nothing beyond the analysis results and logs nothing.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from maskgate.edge.actuators import Hardware
from maskgate.edge.analysis import NOTHING, FrameAnalyzer
from maskgate.edge.config import Config, state_dir
from maskgate.edge.events import Event, EventLog, EventStore, JsonLinesWriter
from maskgate.edge.motion import MotionGate
from maskgate.edge.policy import GatePolicy, PolicyEvent
from maskgate.edge.sources import EndOfStream, FrameSource
from maskgate.edge.status import GateStatus
from maskgate.edge.systemd_notify import SystemdNotifier
from maskgate.errors import MaskgateError, SourceError

log = logging.getLogger(__name__)


class Gate:
    def __init__(self, cfg: Config, *, source: FrameSource, analyzer: FrameAnalyzer | None = None,
                 events_file: str | Path | None = None, hardware: Hardware | None = None,
                 on_event: Callable[[Event], None] | None = None, max_frames: int | None = None,
                 enable_alerts: bool = True):
        self.cfg = cfg
        self.max_frames = max_frames
        self._stop = threading.Event()
        self._commands: list[tuple[str, dict]] = []
        self._commands_lock = threading.Lock()
        self._closed = False
        self.hw = self.store = self.jsonl = self.notifier = self.analyzer = None
        self.source = source
        self.systemd = SystemdNotifier()
        try:
            # 1. the relay first: from here on every failure path de-energizes it
            self.hw = hardware or Hardware(cfg.gpio)
            if cfg.gpio.fail_mode == "safe":
                log.warning("FAIL-SAFE LOCK: gpio.fail_mode = 'safe' — on any failure the relay is released and "
                            "the door OPENS (for maglocks whose fire code requires it)")
            db = Path(cfg.events.database) if cfg.events.database else state_dir() / "events.db"
            self.store = EventStore(db)
            self.events = EventLog(self.store, device=cfg.device.name, door=cfg.device.door_id)
            if events_file:
                self.jsonl = JsonLinesWriter(events_file)
                self.events.add_listener(self.jsonl)
            if on_event is not None:
                self.events.add_listener(on_event)
            self.policy = GatePolicy(cfg.policy)
            self.analyzer = analyzer
            if self.analyzer is None:
                from maskgate.edge.model_files import build_analyzer

                self.analyzer = build_analyzer(cfg)
            self.motion = MotionGate(cfg.detection.motion_threshold) if cfg.detection.motion_gate else None
            self._lowlight = _lowlight(cfg.detection.lowlight)
            if enable_alerts and (cfg.mqtt.enabled or cfg.email.enabled or cfg.webhook.enabled):
                from maskgate.edge.alerts import Notifier

                self.notifier = Notifier(cfg, self.store, status=self.status, on_command=self.command)
                self.events.add_listener(self.notifier.wake)
        except BaseException:
            self._release()
            raise
        # status, written by the gate thread, read by the notifier's threads (floats: no lock needed)
        self.frames = 0
        self.analysed = 0
        self._fps = 0.0
        self._infer_ms = 0.0
        self._people = 0
        self._last_frame_wall: float | None = None
        self._frame_clock_offset = 0.0  # frame ts - time.monotonic(), for stamping button presses

    # -- observers (any thread) ------------------------------------------------------------------ #

    def status(self) -> GateStatus:
        lock = self.hw.lock if self.hw else None
        return GateStatus(
            lock="unlocked" if (lock is not None and not lock.locked) else "locked",
            fault=self.policy.fault, door_open=self.hw.door_open if self.hw else None, mode="gate",
            fps=round(self._fps, 2), infer_ms=round(self._infer_ms, 2), frames=self.frames, people=self._people,
        )

    def command(self, name: str, payload: dict) -> None:
        """A remote command (MQTT thread): queued for the gate thread."""
        with self._commands_lock:
            self._commands.append((name, dict(payload)))

    def stop(self, *_args) -> None:
        """Ask the loop to end (signal handlers, other threads)."""
        self._stop.set()

    # -- the loop -------------------------------------------------------------------------------- #

    def run(self) -> int:
        """Run until the source ends, ``max_frames`` or :meth:`stop`; returns frames seen."""
        previous = self._install_signal_handlers()
        try:
            self._record([PolicyEvent("started", 0.0, -1, {"detail": f"source {self.source.name}"})])
            if self.notifier:
                self.notifier.start()
            self._open_source()
            self.systemd.ready(f"watching {self.source.name}")
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
                self._on_frame(frame)
            return self.frames
        except BaseException as exc:
            if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                self._fail_now(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.close()
            self._restore_signal_handlers(previous)

    def _on_frame(self, frame) -> None:
        now = time.monotonic()
        if self._last_frame_wall is not None:
            dt = now - self._last_frame_wall
            if dt > 0:
                self._fps = 0.9 * self._fps + 0.1 / dt if self._fps else 1.0 / dt
        self._last_frame_wall = now
        self._frame_clock_offset = frame.ts - now
        self.frames += 1
        ts = frame.ts
        if self.policy.fault is not None and self.policy.fault.startswith("camera"):
            self._record(self.policy.on_recovered(ts, frame.index))
            self._apply_outputs()
        self._take_inputs(ts)
        image = frame.image if self._lowlight is None else self._lowlight(frame.image)
        empty = self._people == 0
        if self.motion is None or self.motion.should_analyse(image, ts, empty):
            result = self.analyzer.analyse(image)
            self.analysed += 1
            self._infer_ms = 0.9 * self._infer_ms + 0.1 * result.infer_ms if self._infer_ms else result.infer_ms
        else:
            result = NOTHING
        self._people = len(result.faces)
        events = self.policy.on_frame(ts, frame.index, result.faces, result.infer_ms)
        if events:
            self._record(events)
            self._apply_outputs(events, frame)
        self.systemd.watchdog()

    def _take_inputs(self, ts: float) -> None:
        """Exit button, door contact and remote commands, stamped on the frame clock."""
        events: list[PolicyEvent] = []
        while self.hw is not None and not self.hw.inputs.empty():
            change = self.hw.inputs.get_nowait()
            at = change.at + self._frame_clock_offset if self.source.live else ts
            if change.kind == "exit":
                events += self.policy.on_exit_button(at)
            else:
                events += self.policy.on_door(at, change.value)
        if self._commands:
            with self._commands_lock:
                commands, self._commands = self._commands, []
            for name, payload in commands:
                if name == "unlock":
                    events += self.policy.on_remote_unlock(ts, payload.get("source", "remote"))
                else:
                    log.warning("ignored unknown remote command %r", name)
        if events:
            self._record(events)
            self._apply_outputs(events)

    # -- outputs ----------------------------------------------------------------------------------- #

    def _record(self, events: list[PolicyEvent]) -> None:
        for e in events:
            self.events.record(e.event, e.ts, e.frame, **e.fields)

    def _apply_outputs(self, events: list[PolicyEvent] = (), frame=None) -> None:
        hw = self.hw
        if hw is None:
            return
        if self.policy.fault is not None:
            hw.lock.fail()
        elif self.policy.lock_open:
            hw.lock.unlock()
        else:
            hw.lock.lock()
        for e in events:
            if e.event == "unlocked":
                hw.lights.unlocked()
            elif e.event == "locked":
                hw.lights.locked()
            elif e.event == "denied":
                hw.lights.denied()
                if hw.beeper:
                    hw.beeper.denied()
                if frame is not None and self.cfg.events.snapshots:
                    self._snapshot(frame)
            elif e.event == "fault":
                hw.lights.fault()
                if hw.beeper:
                    hw.beeper.fault()
            elif e.event == "recovered":
                hw.lights.clear_fault()

    def _snapshot(self, frame) -> None:
        from maskgate.edge.snapshots import save_snapshot

        picture = self.source.snapshot()
        folder = Path(self.cfg.events.snapshot_dir) if self.cfg.events.snapshot_dir else state_dir() / "snapshots"
        try:
            save_snapshot(folder, picture if picture is not None else frame.image, frame.index, self.cfg.events.snapshot_keep)
        except OSError as exc:
            log.warning("snapshot not saved: %s", exc)

    # -- faults -------------------------------------------------------------------------------- #

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

    def _fault_now(self, reason: str) -> None:
        ts = time.monotonic() + self._frame_clock_offset
        events = self.policy.on_fault(ts, -1, reason)
        if events:
            log.error("fault: %s — lock de-energized", reason)
            self._record(events)
        self._apply_outputs(events)

    def _fail_now(self, reason: str) -> None:
        """An unexpected error: de-energize first, then try to record it."""
        if self.hw is not None and self.hw.lock is not None:
            self.hw.lock.fail()
        try:
            self._fault_now(reason)
        except Exception:  # noqa: BLE001 - the lock is already safe; recording is best effort
            log.exception("could not record the fault")

    # -- shutdown ---------------------------------------------------------------------------------- #

    def close(self) -> None:
        """De-energize the relay, record the end, release everything.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.hw is not None and self.hw.lock is not None:
            self.hw.lock.fail()  # first, before anything that could raise
        self.systemd.stopping("stopping: lock de-energized")
        ts = time.monotonic() + self._frame_clock_offset if self.source.live else self._last_ts()
        try:
            self._record(self.policy.force_lock(ts, "gate stopping"))
            self._record([PolicyEvent("stopped", ts, -1, {"detail": f"{self.frames} frames, {self.analysed} analysed"})])
        except Exception:  # noqa: BLE001
            log.exception("could not record the final events")
        try:
            self.source.close()
        except Exception:  # noqa: BLE001
            log.debug("error closing the source", exc_info=True)
        self._release()

    def _last_ts(self) -> float:
        recorded = self.events.recorded if self.store is not None else []
        return max((e.ts for e in recorded), default=0.0)

    def _release(self) -> None:
        if self.notifier is not None:
            self.notifier.stop(timeout=5.0)
            self.notifier = None
        if self.jsonl is not None:
            self.jsonl.close()
            self.jsonl = None
        if self.store is not None:
            self.store.close()
        if self.hw is not None:
            self.hw.close()
            self.hw = None
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


def _lowlight(mode: str):
    if mode == "off":
        return None
    from maskgate.edge.lowlight import make_enhancer

    return make_enhancer(mode)


__all__ = ["Gate", "MaskgateError"]
