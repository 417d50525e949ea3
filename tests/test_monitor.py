"""Monitor mode end to end: a replayed clip, the packaged models, crowd events — and no lock, no GPIO."""

from __future__ import annotations

import json

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from maskgate.cli import main
from maskgate.democlip import Segment, write_clip
from maskgate.edge import actuators
from maskgate.edge.alerts.telemetry import Telemetry
from maskgate.edge.config import Config
from maskgate.edge.events import EventStore
from maskgate.edge.monitor import Monitor, build_monitor_analyzer
from maskgate.edge.sources import FrameSource, open_source
from maskgate.edge.status import GateStatus

#: encounter frames (one person at a door) and wild photos (people in the street), shown as a hall camera would
MASKED, UNMASKED = "0019.jpg", "0001.jpg"
PAIR = "scene_0000.jpg"  # two people side by side, about a metre apart


@pytest.fixture(scope="module")
def hall_clip(tmp_path_factory, shared):
    """Empty hall, one masked person, empty, one unmasked person, empty, two people close together, empty."""
    folder = tmp_path_factory.mktemp("hall")
    for name, src in ((MASKED, shared / "data" / "encounters" / MASKED),
                      (UNMASKED, shared / "data" / "encounters" / UNMASKED),
                      (PAIR, shared / "data" / "wild" / "images" / PAIR)):
        (folder / name).symlink_to(src)
    return write_clip(folder / "hall.avi", [
        Segment("empty", 1.0), Segment("visitor", 2.0, MASKED), Segment("empty", 1.5),
        Segment("visitor", 2.0, UNMASKED), Segment("empty", 1.5), Segment("visitor", 2.0, PAIR), Segment("empty", 1.5),
    ], encounters=folder)


@pytest.fixture
def no_gpio(monkeypatch):
    """Any attempt to build the door's hardware or any gpiozero device fails the test; gpiozero's default
    factory is a mock whose pins we can inspect."""
    def refuse(*_a, **_k):
        raise AssertionError("monitor mode touched the door hardware")

    for name in ("Hardware", "DoorLock", "StatusLights", "Beeper", "make_pin_factory"):
        monkeypatch.setattr(actuators, name, refuse)
    monkeypatch.setattr(Device, "__init__", refuse)  # no gpiozero device at all, whatever its pin factory
    factory = MockFactory()
    previous = Device.pin_factory
    Device.pin_factory = factory
    yield factory
    Device.pin_factory = previous
    factory.reset()


def crowd_events(store_path):
    return [e for e in EventStore(store_path).all() if e.event == "crowd"]


def test_a_replayed_hall_gives_crowd_events_and_never_touches_a_lock(hall_clip, no_gpio, tmp_path):
    db = tmp_path / "events.db"
    cfg = Config().replace(events={"database": str(db)}, monitor={"event_seconds": 0.5, "window": 3})
    seen = []
    mon = Monitor(cfg, source=open_source(str(hall_clip), cfg.camera), on_event=seen.append,
                  events_file=tmp_path / "events.jsonl")
    frames = mon.run()
    assert frames == 115 and mon.analysed > 0
    stored = EventStore(db).all()
    kinds = [e.event for e in stored]
    assert kinds[0] == "started" and kinds[-1] == "stopped" and "monitor" in stored[0].detail
    assert not {"unlocked", "locked", "denied", "allowed", "fault"} & set(kinds)
    crowd = crowd_events(db)
    assert [e.faces for e in crowd] == [1, 0, 1, 0, 2, 0], [(e.ts, e.faces, e.detail) for e in crowd]
    assert crowd[0].detail.startswith("1 person, 1 masked (100%)") and crowd[0].decision == "clear"
    assert crowd[2].detail.startswith("1 person, 0 masked (0%)")
    assert crowd[4].decision == "violation" and "1 pair closer than 1.5 m" in crowd[4].detail
    assert crowd[1].detail == "nobody"
    # each event at the change it reports, not every frame
    assert [e.ts for e in crowd] == pytest.approx([1, 3, 4.5, 6.5, 8, 10], abs=0.6)
    assert [e.event for e in seen] == kinds
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [obj["event"] for obj in lines] == kinds
    assert no_gpio.pins == {}  # not one pin was created


def test_status_and_telemetry_carry_the_crowd_in_monitor_mode_only(hall_clip, no_gpio, tmp_path):
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")}, monitor={"window": 1, "event_seconds": 0})
    def watch(event):
        if event.event == "crowd" and event.faces == 2:
            mon.stop()

    mon = Monitor(cfg, source=open_source(str(hall_clip), cfg.camera), on_event=watch)
    mon.run()
    status = mon.status()
    assert status.mode == "monitor" and status.people == 2 and status.violations == 1
    assert status.masked is not None and status.masked_share == pytest.approx(status.masked / 2)
    assert status.lock == "locked" and status.fault is None
    t = Telemetry(thermal=tmp_path / "none", throttled_sysfs=tmp_path / "none", vcgencmd=None)
    payload = t.payload(status)
    assert payload["mode"] == "monitor" and payload["people"] == 2 and payload["violations"] == 1
    assert payload["masked"] == status.masked and payload["masked_share"] == status.masked_share
    door = t.payload(GateStatus(people=1))
    assert not {"masked", "masked_share", "violations"} & set(door)  # the door's telemetry is unchanged


class StallingCamera(FrameSource):
    """A live camera replaying a clip that delivers nothing once, mid-way (the loop must call it a stall)."""

    live = True
    name = "stalling camera"

    def __init__(self, clip, cfg, stall_at: int):
        self.inner = open_source(str(clip), cfg.camera)
        self.stall_at = stall_at
        self.reads = 0
        self.opened = 0

    def open(self):
        self.opened += 1
        if self.opened == 1:
            self.inner.open()

    def read(self, timeout):
        self.reads += 1
        if self.reads == self.stall_at:
            return None
        return self.inner.read(timeout)

    def close(self):
        pass


def test_a_stalled_camera_is_a_fault_then_recovered_without_a_lock(hall_clip, no_gpio, tmp_path):
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")})
    cam = StallingCamera(hall_clip, cfg, stall_at=20)
    mon = Monitor(cfg, source=cam, max_frames=40)
    assert mon.run() == 40
    kinds = [e.event for e in EventStore(tmp_path / "e.db").all()]
    assert kinds.count("fault") == 1 and kinds.count("recovered") == 1
    assert kinds.index("fault") < kinds.index("recovered")
    assert cam.opened == 2 and no_gpio.pins == {}


def test_remote_commands_are_refused(hall_clip, no_gpio, tmp_path, caplog):
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")})
    mon = Monitor(cfg, source=open_source(str(hall_clip), cfg.camera), max_frames=1)
    mon.command("unlock", {"source": "mqtt"})
    mon.run()
    assert "monitor mode drives no lock" in caplog.text
    assert "remote_unlock" not in [e.event for e in EventStore(tmp_path / "e.db").all()]


def test_the_monitor_analyzer_finds_small_faces_the_door_ignores():
    cfg = Config()
    a = build_monitor_analyzer(cfg)
    assert a.min_face == cfg.monitor.min_face < cfg.detection.min_face
    assert a.detector.detector.height == 300 and a.detector.grid == cfg.monitor.tiles  # the 300x300, tiled
    one = build_monitor_analyzer(cfg.replace(monitor={"tiles": 1, "detector": ""}))
    assert one.detector.detector.height == 168 and one.detector.grid == 1  # the door's own detector, untiled
    assert a.mask_threshold == cfg.monitor.mask_threshold and a.detector.score_threshold == cfg.monitor.score_threshold
    door_threshold = build_monitor_analyzer(cfg.replace(monitor={"mask_threshold": -1})).mask_threshold
    assert door_threshold > cfg.monitor.mask_threshold  # the door's, from the manifest: strict


def test_run_mode_monitor_from_the_command_line(hall_clip, no_gpio, tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    rc = main(["run", "--mode", "monitor", "--source", str(hall_clip), "--events", str(events), "--max-frames", "60"])
    assert rc == 0
    out, err = capsys.readouterr()
    assert "CROWD" in out and "monitor mode, no lock driven" in err
    kinds = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    assert "crowd" in kinds and "locked" not in kinds and no_gpio.pins == {}
