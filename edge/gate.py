"""The gate: frames → faces → policy → lock.

Reads top to bottom as the steps a door goes through (the shared machinery — events, alerts,
source, stalls, signals, watchdog — is :class:`maskgate.edge.loop.FrameLoop`):

1. start-up — the hardware first (the relay comes up de-energized: locked), then the event store,
   the models, notifications.  Any error here releases the pins with the relay de-energized.
2. each frame — take button / door / remote inputs, analyse (unless the motion gate says the
   doorway is empty and still), apply the policy, drive the lock and lights.  A stalled camera is a
   fault: the relay is de-energized at once and the camera reconnected with backoff.
3. shutdown — on every way out (end of a replayed file, SIGTERM, Ctrl-C, an exception): de-energize
   the relay first, then record the final events and release everything.
"""

from __future__ import annotations

import logging
import threading

from maskgate.edge.actuators import Hardware
from maskgate.edge.analysis import FrameAnalyzer
from maskgate.edge.config import Config, state_dir
from maskgate.edge.loop import FrameLoop
from maskgate.edge.policy import GatePolicy, PolicyEvent
from maskgate.edge.status import GateStatus

log = logging.getLogger(__name__)


class Gate(FrameLoop):
    mode = "gate"

    def __init__(self, cfg: Config, *, hardware: Hardware | None = None, **kwargs):
        self.hw = hardware  # built (or adopted) first, in _open_outputs
        self.policy = GatePolicy(cfg.policy)
        self._commands: list[tuple[str, dict]] = []
        self._commands_lock = threading.Lock()
        self._people = 0
        self.live = None  # the installer's page (maskgate.edge.web.live.LiveView) once attached
        if cfg.mqtt.enabled and cfg.mqtt.camera:  # Home Assistant's camera entity (off by default: privacy)
            from maskgate.edge.alerts.camera import CameraFeed

            self.camera_feed = CameraFeed(cfg)
        self.reload_config: Config | None = None  # set by a "reload" command: run again with it
        super().__init__(cfg, **kwargs)

    # -- start-up ---------------------------------------------------------------------------------- #

    def _open_outputs(self) -> None:
        if self.hw is None:
            self.hw = Hardware(self.cfg.gpio)
        if self.cfg.gpio.fail_mode == "safe":
            log.warning("FAIL-SAFE LOCK: gpio.fail_mode = 'safe' — on any failure the relay is released and "
                        "the door OPENS (for maglocks whose fire code requires it)")

    def _build_analyzer(self) -> FrameAnalyzer:
        from maskgate.edge.model_files import build_analyzer

        return build_analyzer(self.cfg)

    # -- observers (any thread) -------------------------------------------------------------------- #

    def status(self) -> GateStatus:
        hw = self.hw
        lock = hw.lock if hw is not None else None
        return GateStatus(
            lock="unlocked" if (lock is not None and not lock.locked) else "locked",
            fault=self.policy.fault, door_open=hw.door_open if hw is not None else None, mode="gate",
            fps=round(self._fps, 2), infer_ms=round(self._infer_ms, 2), frames=self.frames, people=self._people,
        )

    @property
    def restarting(self) -> bool:
        return self.reload_config is not None

    def command(self, name: str, payload: dict) -> None:
        """A remote command (MQTT thread): queued for the gate thread."""
        with self._commands_lock:
            self._commands.append((name, dict(payload)))

    # -- each frame -------------------------------------------------------------------------------- #

    def _on_frame(self, frame) -> None:
        ts = frame.ts
        if self.policy.fault is not None and self.policy.fault.startswith("camera"):
            self._record(self.policy.on_recovered(ts, frame.index))
            self._apply_outputs()
        self._take_inputs(ts)
        result = self._analyse(frame.image, ts, self._people == 0)
        self._people = len(result.faces)
        events = self.policy.on_frame(ts, frame.index, result.faces, result.infer_ms)
        if events:
            self._record(events)
            self._apply_outputs(events, frame)
        live = self.live
        if live is not None and live.armed:  # someone watches the page: nothing more per frame otherwise
            live.offer(frame.image, result.faces, self.policy)
        feed = self.camera_feed
        if feed is not None and feed.armed:  # mqtt.camera: a picture is due, once per mqtt.camera_interval
            feed.offer(frame.image, result.faces, self.policy)

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
                    events += self.policy.on_remote_unlock(ts, payload.get("source", "remote"), payload.get("seconds"))
                elif name == "lock":
                    events += self.policy.force_lock(ts, f"locked now ({payload.get('source', 'remote')})")
                elif name == "reload":
                    self.reload_config = payload["config"]  # validated by the sender
                    self.stop()
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
        if hw is None or hw.lock is None:
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
        from pathlib import Path

        from maskgate.edge.snapshots import save_snapshot

        picture = self.source.snapshot()
        folder = Path(self.cfg.events.snapshot_dir) if self.cfg.events.snapshot_dir else state_dir() / "snapshots"
        try:
            save_snapshot(folder, picture if picture is not None else frame.image, frame.index,
                          self.cfg.events.snapshot_keep)
        except OSError as exc:
            log.warning("snapshot not saved: %s", exc)

    # -- faults and shutdown ----------------------------------------------------------------------- #

    def _fault_now(self, reason: str) -> None:
        events = self.policy.on_fault(self._now_on_frame_clock(), -1, reason)
        if events:
            log.error("fault: %s — lock de-energized", reason)
            self._record(events)
        self._apply_outputs(events)

    def _fail_now(self, reason: str) -> None:
        if self.hw is not None and self.hw.lock is not None:
            self.hw.lock.fail()  # before anything that could raise
        super()._fail_now(reason)

    def _close_outputs(self, ts: float) -> None:
        if self.hw is not None and self.hw.lock is not None:
            self.hw.lock.fail()  # first, before anything that could raise
        self._record(self.policy.force_lock(ts, "gate stopping"))

    def _release_outputs(self) -> None:
        if self.hw is not None:
            self.hw.close()
            self.hw = None


__all__ = ["Gate"]
