"""The gate end to end: replayed clips, the packaged int8 models, gpiozero MockFactory pins, SQLite.

The pin history of the lock relay is the ground truth of what the door did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from maskgate.democlip import Segment, write_clip
from maskgate.edge.actuators import Hardware
from maskgate.edge.config import Config
from maskgate.edge.events import EventStore
from maskgate.edge.gate import Gate
from maskgate.edge.sources import open_source
from maskgate.edge.sources.live import ThreadedLiveSource
from maskgate.errors import ModelError

LOCK_PIN = 17
# clear frames from scenes held out of the classifier's training
MASKED, UNMASKED, INCORRECT = "0010.jpg", "0012.jpg", "0011.jpg"


@pytest.fixture(scope="module")
def visit_clip(tmp_path_factory, shared):
    """A masked visitor, the empty doorway, an unmasked visitor, the empty doorway."""
    path = tmp_path_factory.mktemp("clips") / "visits.avi"
    return write_clip(path, [Segment("empty", 1.0), Segment("visitor", 3.0, MASKED), Segment("empty", 8.0),
                             Segment("visitor", 3.0, UNMASKED), Segment("empty", 3.0)],
                      encounters=shared / "data" / "encounters")


def relay_states(factory) -> list[int]:
    return [s.state for s in factory.pin(LOCK_PIN).states]


def make_gate(cfg, source, factory, **kw):
    return Gate(cfg, source=source, hardware=Hardware(cfg.gpio, pin_factory=factory), **kw)


def test_masked_then_unmasked_visitor_unlock_relock_deny_and_end_locked(visit_clip, factory, tmp_path):
    cfg = Config().replace(events={"database": str(tmp_path / "events.db")})
    events_file = tmp_path / "events.jsonl"
    gate = make_gate(cfg, open_source(str(visit_clip), cfg.camera), factory, events_file=events_file)
    gate.run()
    stored = [e.event for e in EventStore(tmp_path / "events.db").all()]
    decisions = [e for e in stored if e in ("unlocked", "locked", "denied")]
    assert decisions == ["unlocked", "locked", "denied"], stored
    assert stored[0] == "started" and stored[-1] == "stopped"
    # the relay: de-energized, energized once for the unlock, de-energized again, and so it stays
    states = relay_states(factory)
    assert states[0] == 0 and states[-1] == 0
    assert [k for i, k in enumerate(states) if i == 0 or k != states[i - 1]] == [0, 1, 0]
    lines = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert all({"event", "frame", "ts"} <= set(obj) for obj in lines)
    unlocked = next(obj for obj in lines if obj["event"] == "unlocked")
    assert 10 <= unlocked["frame"] <= 40 and unlocked["p_mask"] > 0.5


def test_decisions_do_not_depend_on_replay_speed(visit_clip, factory, tmp_path):
    """Frame timestamps are index/fps: a slow machine replays the same decisions at the same frames."""
    results = []
    for delay in (0.0, 0.01):
        cfg = Config().replace(events={"database": str(tmp_path / f"e{delay}.db")})
        source = open_source(str(visit_clip), cfg.camera)
        gate = make_gate(cfg, source, factory)
        if delay:
            original = gate.analyzer.analyse

            def slow(image, original=original):
                time.sleep(delay)
                return original(image)

            gate.analyzer.analyse = slow
        gate.run()
        results.append([(e.event, e.frame, e.ts) for e in gate.events.recorded if e.event != "stopped"])
        factory.reset()
    assert results[0] == results[1]


def test_incorrectly_worn_mask_is_denied(shared, factory, tmp_path):
    clip = write_clip(tmp_path / "incorrect.avi", [Segment("visitor", 3.0, INCORRECT)],
                      encounters=shared / "data" / "encounters")
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")})
    gate = make_gate(cfg, open_source(str(clip), cfg.camera), factory)
    gate.run()
    kinds = [e.event for e in gate.events.recorded]
    assert "denied" in kinds and "unlocked" not in kinds
    assert set(relay_states(factory)) == {0}


class StallingCamera(ThreadedLiveSource):
    """A live camera that delivers ``good`` frames, then nothing (a loose cable), then recovers."""

    name = "stalling-test-camera"

    def __init__(self, frame: np.ndarray, good: int):
        super().__init__()
        self.frame, self.good, self.opens, self.sent = frame, good, 0, 0

    def _open_device(self):
        self.opens += 1

    def _grab(self):
        if self.opens == 1 and self.sent >= self.good:
            time.sleep(0.05)
            return None, 0.0
        self.sent += 1
        time.sleep(0.02)
        return self.frame, time.monotonic()

    def _close_device(self):
        pass


def test_a_stalled_camera_locks_within_the_timeout_and_reconnects(shared, factory, tmp_path):
    import cv2

    masked = cv2.imread(str(shared / "data" / "encounters" / MASKED))
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")},
                           camera={"stall_timeout": 0.5}, policy={"unlock_seconds": 60.0})
    cam = StallingCamera(masked, good=15)
    gate = make_gate(cfg, cam, factory, max_frames=40)
    t0 = time.monotonic()
    gate.run()
    kinds = [e.event for e in gate.events.recorded]
    assert kinds.index("unlocked") < kinds.index("fault") < kinds.index("recovered")
    fault = next(e for e in gate.events.recorded if e.event == "fault")
    assert "camera stalled" in fault.detail
    assert cam.opens == 2  # reconnected
    # the relay went back to de-energized at the fault, although the unlock had 60 s to run
    states = relay_states(factory)
    assert 1 in states and states[-1] == 0
    assert time.monotonic() - t0 < 30


def test_missing_model_refuses_to_start_with_the_relay_locked(factory, tmp_path):
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")},
                           models={"classifier": str(tmp_path / "missing.tflite")})
    hw = Hardware(cfg.gpio, pin_factory=factory)
    with pytest.raises(ModelError, match="missing.tflite"):
        Gate(cfg, source=open_source("demo", cfg.camera), hardware=hw)
    assert relay_states(factory)[-1] == 0
    assert hw.lock is None  # released


def test_an_exception_in_the_loop_de_energizes_before_it_propagates(visit_clip, factory, tmp_path):
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")}, policy={"unlock_seconds": 60.0})
    gate = make_gate(cfg, open_source(str(visit_clip), cfg.camera), factory)
    original = gate.analyzer.analyse
    calls = {"n": 0}

    def explode(image):
        calls["n"] += 1
        if calls["n"] == 25:  # after the masked visitor was let in
            raise RuntimeError("inference crashed")
        return original(image)

    gate.analyzer.analyse = explode
    with pytest.raises(RuntimeError, match="inference crashed"):
        gate.run()
    states = relay_states(factory)
    assert 1 in states and states[-1] == 0
    kinds = [e.event for e in EventStore(tmp_path / "e.db").all()]
    assert "fault" in kinds and kinds[-1] == "stopped"


def test_exit_button_unlocks_from_inside(shared, factory, tmp_path):
    clip = write_clip(tmp_path / "empty.avi", [Segment("empty", 6.0)], encounters=shared / "data" / "encounters")
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")}, policy={"exit_unlock_seconds": 2.0})
    gate = make_gate(cfg, open_source(str(clip), cfg.camera), factory)
    original = gate.analyzer.analyse
    seen = {"n": 0}

    def press_once(image):
        seen["n"] += 1
        if seen["n"] == 5:
            factory.pin(cfg.gpio.exit_button).drive_low()
            time.sleep(0.1)  # gpiozero delivers the press on its own thread
            factory.pin(cfg.gpio.exit_button).drive_high()
        return original(image)

    gate.analyzer.analyse = press_once
    gate.motion = None  # analyse every frame of the still, empty clip
    gate.run()
    ev = [(e.event, e.ts) for e in gate.events.recorded]
    kinds = [k for k, _ in ev]
    assert kinds[1:4] == ["exit_request", "unlocked", "locked"]
    assert dict(ev)["locked"] - dict(ev)["unlocked"] == pytest.approx(2.0, abs=0.2)
    assert relay_states(factory)[-1] == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_run_locked(shared, tmp_path, sig):
    """The real CLI under SIGTERM (systemd) or SIGINT (Ctrl-C), while the door is unlocked: exits 0, the last
    events say locked and stopped."""
    clip = write_clip(tmp_path / "long.avi", [Segment("visitor", 60.0, MASKED)], encounters=shared / "data" / "encounters")
    events = tmp_path / "ev.jsonl"
    conf = tmp_path / "c.toml"
    conf.write_text(f"[events]\ndatabase = '{tmp_path / 'e.db'}'\n[policy]\nunlock_seconds = 600.0\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "maskgate", "run", "--config", str(conf), "--source", str(clip),
                             "--events", str(events)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if events.exists() and "unlocked" in events.read_text():
            break
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    kinds = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    assert kinds[-2:] == ["locked", "stopped"]
    assert "lock de-energized" in err


def test_bad_config_refuses_to_start_with_one_line(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text("[policy]\nwindow = 0\n")
    r = subprocess.run([sys.executable, "-m", "maskgate", "run", "--config", str(conf)], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == "maskgate: error: config key 'policy.window': must be >= 1, got 0"
    r = subprocess.run([sys.executable, "-m", "maskgate", "run", "--config", str(conf), "--validate-config"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "policy.window" in r.stderr


def test_snapshots_of_denied_visits_are_off_by_default_and_kept_within_the_limit(shared, factory, tmp_path):
    clip = write_clip(tmp_path / "two_denied.avi", [Segment("visitor", 2.0, UNMASKED), Segment("empty", 3.0),
                                                     Segment("visitor", 2.0, UNMASKED), Segment("empty", 1.0)],
                      encounters=shared / "data" / "encounters")
    snaps = tmp_path / "snaps"
    for enabled in (False, True):
        cfg = Config().replace(events={"database": str(tmp_path / f"e{enabled}.db"), "snapshots": enabled,
                                       "snapshot_dir": str(snaps), "snapshot_keep": 1})
        gate = make_gate(cfg, open_source(str(clip), cfg.camera), factory)
        gate.run()
        factory.reset()
        assert [e.event for e in gate.events.recorded].count("denied") == 2
        if not enabled:
            assert not snaps.exists()
    files = sorted(snaps.glob("denied_*.jpg"))
    assert len(files) == 1  # two denied visits, retention 1
    import cv2

    assert cv2.imread(str(files[0])).shape == (480, 640, 3)
