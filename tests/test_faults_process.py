"""Fault matrix: the process and its files — SIGKILL, power cut, a corrupt database, a model that is not the
manifest's.  Each test's docstring is its row in docs/faults.md (tests/fault_matrix.py)."""

from __future__ import annotations

import json
import random
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maskgate.democlip import Segment, write_clip
from maskgate.edge.config import Config
from maskgate.edge.events import DURABLE_KINDS, EventStore
from maskgate.edge.model_files import DEFAULT_CLASSIFIER, DEFAULT_DETECTOR, artifact_dir
from maskgate.edge.sources import open_source
from maskgate.errors import ModelError

from fault_helpers import kinds
from test_gate import MASKED, make_gate, relay_states

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "files" / "maskgate.service"


def exec_stop_post(conf: Path, device: Path) -> list[str]:
    """The unit's ExecStopPost= command line, run here: our interpreter, the test's config files."""
    line = next(x for x in UNIT.read_text().splitlines() if x.startswith("ExecStopPost="))
    argv = shlex.split(line.split("=", 1)[1])
    assert argv[0].endswith("/bin/maskgate")
    mapping = {"/etc/maskgate/config.toml": str(conf), "/etc/maskgate/device.toml": str(device)}
    return [sys.executable, "-m", "maskgate", *[mapping.get(a, a) for a in argv[1:]]]


def wait_for(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"no {text!r} in {path}"
        time.sleep(0.2)


def test_sigkill_while_unlocked_is_relocked_by_execstoppost_and_reported_on_restart(shared, tmp_path):
    """Fault: SIGKILL while the door is unlocked (no Python cleanup runs).
    Injected: `maskgate run` on a clip of a masked visitor, unlock_seconds 600; SIGKILL once it reports `unlocked`;
    then the unit's own ExecStopPost= command line; then the gate again.
    Outcome: ExecStopPost de-energizes the relay (pin low) and records `locked`; the restarted gate records a
    `fault` naming the unclean end, then `recovered`, and runs."""
    clip = write_clip(tmp_path / "long.avi", [Segment("visitor", 60.0, MASKED)], encounters=shared / "data" / "encounters")
    db, events = tmp_path / "e.db", tmp_path / "ev.jsonl"
    conf, device = tmp_path / "config.toml", tmp_path / "device.toml"
    conf.write_text(f"[events]\ndatabase = '{db}'\n[policy]\nunlock_seconds = 600.0\n")
    device.write_text("[device]\nname = 'door1'\n")
    proc = subprocess.Popen([sys.executable, "-m", "maskgate", "run", "--config", str(conf), "--config", str(device),
                             "--source", str(clip), "--events", str(events)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(events, '"unlocked"')
    finally:
        proc.kill()
    proc.wait(30)
    assert proc.returncode == -9
    assert kinds(EventStore(db).all())[-1] == "unlocked"  # nothing ran after the kill

    post = subprocess.run(exec_stop_post(conf, device), capture_output=True, text=True, timeout=60)
    assert post.returncode == 0, post.stderr
    assert "lock relay on GPIO17 de-energized (pin low): door locked" in post.stdout
    after_kill = EventStore(db).all()
    assert kinds(after_kill)[-2:] == ["unlocked", "locked"] and "maskgate lock" in after_kill[-1].detail

    again = subprocess.run([sys.executable, "-m", "maskgate", "run", "--config", str(conf), "--config", str(device),
                            "--source", str(clip), "--max-frames", "5"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    restart = EventStore(db).all()[len(after_kill):]
    assert kinds(restart)[:3] == ["started", "fault", "recovered"] and kinds(restart)[-1] == "stopped"
    assert "ended without stopping" in restart[1].detail and "'locked'" in restart[1].detail


WRITER = """
import sys
from maskgate.edge.events import EventLog, EventStore
log = EventLog(EventStore(sys.argv[1]), device="door1")
kinds = ["denied", "unlocked", "locked", "fault", "recovered", "door_opened", "started"]
i = 0
while True:
    ev = log.record(kinds[i % len(kinds)], float(i), i)
    sys.stdout.write(f"{ev.seq} {ev.uid}\\n")
    sys.stdout.flush()
    i += 1
"""


def test_kill_9_of_the_event_writer_many_times_loses_no_reported_event(tmp_path):
    """Fault: power cut while events are written.
    Injected: a process recording events as fast as it can, killed with SIGKILL at a random moment, 25 times over
    one database; security kinds are fsynced (synchronous=FULL) before they are reported.
    Outcome: the database opens, `PRAGMA integrity_check` is ok, every event reported as written is there, ids
    unique and in order; nothing is moved aside as corrupt."""
    db = tmp_path / "events.db"
    rng = random.Random(16)
    reported: list[tuple[int, str]] = []
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline()  # it writes
        time.sleep(rng.uniform(0.0, 0.15))
        proc.kill()
        out, _ = proc.communicate(10)
        lines = out.split("\n")[:-1]  # the last, possibly cut, line is not a report
        for line in lines:
            seq, uid = line.split()
            reported.append((int(seq), uid))
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    assert len(reported) > 100
    stored = EventStore(db).all()
    by_uid = {e.uid: e.seq for e in stored}
    assert all(by_uid.get(uid) == seq for seq, uid in reported), "an event reported as written is missing"
    seqs = [e.seq for e in stored]
    assert seqs == sorted(set(seqs))
    assert not list(tmp_path.glob("events.db.corrupt-*"))


def test_durability_follows_the_event_kind(store):
    """The documented choice: security kinds fsynced (synchronous=FULL, 2), routine kinds NORMAL (1)."""
    from maskgate.edge.events import Event

    assert {"unlocked", "denied", "fault", "remote_unlock", "exit_request", "held_open"} <= DURABLE_KINDS
    assert not {"started", "stopped", "locked", "recovered", "crowd"} & DURABLE_KINDS
    for kind, level in (("denied", 2), ("locked", 1), ("unlocked", 2), ("stopped", 1)):
        store.append(Event(kind, 1.0))
        assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == level, kind


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite database\n" * 300)


def _truncated(path: Path) -> None:
    s = EventStore(path)
    from maskgate.edge.events import EventLog

    log = EventLog(s, device="door1")
    for i in range(400):
        log.record("denied", float(i), i, detail="x" * 200)
    s.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 5])


def _zeroed_header(path: Path) -> None:
    _truncated(path)
    data = bytearray(path.read_bytes())
    data[:100] = bytes(100)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_garbage, _truncated, _zeroed_header], ids=["garbage", "truncated", "zeroed-header"])
def test_a_corrupt_database_at_start_is_moved_aside_and_the_gate_runs(shared, factory, tmp_path, damage):
    """Fault: a corrupt or truncated event database at start.
    Injected: the database file replaced by garbage, cut to 40 %, or its header zeroed, before the gate starts.
    Outcome: the file is moved aside unchanged (events.db.corrupt-*), a new database is started with `started`,
    a `fault` naming the corruption and `recovered`; the gate runs to the end of its clip."""
    db = tmp_path / "events.db"
    damage(db)
    damaged = db.read_bytes()
    clip = write_clip(tmp_path / "empty.avi", [Segment("empty", 1.0)], encounters=shared / "data" / "encounters")
    cfg = Config().replace(events={"database": str(db)})
    gate = make_gate(cfg, open_source(str(clip), cfg.camera), factory)
    assert gate.run() == 10
    aside = list(tmp_path.glob("events.db.corrupt-*"))
    assert len([p for p in aside if not p.name.endswith(("-wal", "-shm"))]) == 1
    assert min(aside, key=lambda p: len(p.name)).read_bytes() == damaged
    stored = EventStore(db).all()
    assert kinds(stored) == ["started", "fault", "recovered", "stopped"]
    assert "event database was corrupt" in stored[1].detail
    assert relay_states(factory)[-1] == 0


def _copy_models(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    for name in (DEFAULT_DETECTOR, DEFAULT_CLASSIFIER, "manifest.json"):
        shutil.copy(artifact_dir() / name, models / name)
    return models


def _bit_flip(model: Path) -> None:
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x10
    model.write_bytes(bytes(data))


def _truncate(model: Path) -> None:
    model.write_bytes(model.read_bytes()[:-1000])


def _wrong_file(model: Path) -> None:
    shutil.copy(artifact_dir() / "face_detector_300x300_int8.tflite", model)  # the same size, other weights


@pytest.mark.parametrize("tamper", [_bit_flip, _truncate, _wrong_file], ids=["bit-flip", "truncated", "wrong-file"])
def test_a_model_that_does_not_match_the_manifest_refuses_to_start(factory, tmp_path, tamper):
    """Fault: a model file that does not match models/manifest.json.
    Injected: one bit flipped, the last 1000 bytes cut, or the 300x300 detector copied over the 224x168 one.
    Outcome: `maskgate run` exits 1 with one line naming the file and the mismatch; the gate, started with
    simulated pins, leaves the relay de-energized and the pins released."""
    models = _copy_models(tmp_path)
    detector = models / DEFAULT_DETECTOR
    tamper(detector)
    conf = tmp_path / "c.toml"
    conf.write_text(f"[models]\ndetector = '{detector}'\nclassifier = '{models / DEFAULT_CLASSIFIER}'\n"
                    f"[events]\ndatabase = '{tmp_path / 'e.db'}'\n")
    r = subprocess.run([sys.executable, "-m", "maskgate", "run", "--config", str(conf), "--max-frames", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskgate: error: ") and "Traceback" not in r.stderr
    assert str(detector) in lines[0] and "does not match" in lines[0] and "manifest.json" in lines[0]

    from maskgate.edge.actuators import Hardware
    from maskgate.edge.gate import Gate

    cfg = Config().replace(models={"detector": str(detector), "classifier": str(models / DEFAULT_CLASSIFIER)},
                           events={"database": str(tmp_path / "e2.db")})
    hw = Hardware(cfg.gpio, pin_factory=factory)
    with pytest.raises(ModelError, match="does not match"):
        Gate(cfg, source=open_source("demo", cfg.camera), hardware=hw)
    assert relay_states(factory)[-1] == 0 and hw.lock is None


def test_the_untouched_models_pass_the_manifest_check(tmp_path):
    """The check can pass: copies of the packaged models, unchanged, load."""
    from maskgate.edge.model_files import build_analyzer

    models = _copy_models(tmp_path)
    cfg = Config().replace(models={"detector": str(models / DEFAULT_DETECTOR),
                                   "classifier": str(models / DEFAULT_CLASSIFIER)})
    assert build_analyzer(cfg) is not None
    assert json.loads((models / "manifest.json").read_text())["artifacts"][DEFAULT_DETECTOR]["sha256"]
