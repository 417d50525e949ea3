"""Fault matrix: the state directory's disk is full (a small tmpfs mounted by the test; needs root, as in CI).
Each test's docstring is its row in docs/faults.md (tests/fault_matrix.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from maskgate.edge.config import Config
from maskgate.edge.events import EventLog, EventStore, EventStoreError
from maskgate.edge.sources import open_source

from alerts_helpers import Mosquitto, SmtpServer, Subscriber, WebhookServer, drop_proxies, wait_until
from conftest import REQUIRE_TOOLS
from fault_helpers import kinds
from test_gate import make_gate, relay_states, visit_clip  # noqa: F401 - visit_clip is a fixture (factory: conftest)

EVENT, STATE = "maskgate/door1/event", "maskgate/door1/state"


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at tmp_path/state, unmounted at teardown."""
    if os.geteuid() != 0:
        if REQUIRE_TOOLS:
            pytest.fail("the full-disk test mounts a tmpfs and needs root (CI runs as root)")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder) -> "os.PathLike":
    """Write a file until the disk says ENOSPC; returns it (delete it to free the space)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def storage_faults(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["event"] == "fault" and m["detail"].startswith("storage:")]


@pytest.fixture
def receivers(tmp_path, cleanup, monkeypatch):
    """A real mosquitto with a subscriber on the gate's events and state, an SMTP server (aiosmtpd) and a
    webhook receiver (http.server)."""
    pytest.importorskip("paho.mqtt.client")
    drop_proxies(monkeypatch)
    broker = Mosquitto(tmp_path / "broker").start()
    cleanup(broker.stop)
    subscriber = Subscriber(broker.port, [EVENT, STATE])
    cleanup(subscriber.close)
    smtp = SmtpServer().start()
    cleanup(smtp.stop)
    hook = WebhookServer().start()
    cleanup(hook.stop)
    return broker, subscriber, smtp, hook


def mailed(smtp) -> list[str]:
    """The uids of the alerts in every mail, in order."""
    return [uid for m in list(smtp.messages) for uid in m["X-Maskgate-Event-Uids"].split()]


def test_a_full_disk_keeps_the_gate_deciding_with_one_storage_fault_and_writing_resumes(
        small_disk, visit_clip, factory, tmp_path, receivers):
    """Fault: the state directory's disk is full.
    Injected: a 1 MiB tmpfs holds the event database; a file fills it once the gate has started; it is deleted
    after the unmasked visitor's denial; then the database is closed, the disk filled again and the gate
    started on it. MQTT (a real mosquitto), e-mail (aiosmtpd) and the webhook (http.server) are enabled.
    Outcome: the masked visitor is let in and the unmasked one denied while the disk is full; exactly one
    `fault` (storage) reaches the JSON lines, MQTT (also the retained state's `fault`), e-mail and the webhook
    while the disk is still full, delivered from memory; when space returns every event is written in order,
    then `recovered`, and each channel has delivered every event once (MQTT and the webhook in the database's
    order; one mail per alert); a start on a full disk runs to the end as well (no crash loop), its storage
    fault on MQTT and the webhook too."""
    broker, subscriber, smtp, hook = receivers
    db = small_disk / "events.db"
    cfg = Config().replace(
        device={"name": "door1"}, events={"database": str(db)},
        mqtt={"enabled": True, "url": f"mqtt://127.0.0.1:{broker.port}", "reconnect_max_seconds": 1},
        email={"enabled": True, "host": "127.0.0.1", "port": smtp.port, "starttls": False,
               "recipients": ["desk@example.com"], "min_interval_seconds": 0, "retry_max_seconds": 0.5},
        webhook={"enabled": True, "url": f"http://127.0.0.1:{hook.port}/hook", "retry_max_seconds": 0.5})
    jsonl = tmp_path / "events.jsonl"
    gate = make_gate(cfg, open_source(str(visit_clip), cfg.camera), factory, events_file=jsonl)
    original = gate.analyzer.analyse
    state = {"filler": None, "fault_out": False, "freed": False}

    def out_while_full():
        """Wait (on the gate thread) for the storage fault on both channels; the disk is full meanwhile."""
        wait_until(lambda: storage_faults(subscriber.json_on(EVENT)) and storage_faults(hook.bodies())
                   and any("storage:" in m["Subject"] for m in list(smtp.messages)),
                   timeout=20, what="the storage fault on MQTT, e-mail and the webhook while the disk is full")
        wait_until(lambda: ((subscriber.json_on(STATE)[-1:] or [{}])[0].get("fault") or "").startswith("storage:"),
                   timeout=20, what="the storage fault in the retained MQTT state")
        assert os.statvfs(small_disk).f_bavail == 0 and state["filler"].exists()

    def analyse(image):
        if state["filler"] is None:
            state["filler"] = fill(small_disk)
        elif not state["fault_out"] and "fault" in kinds(gate.events.recorded):
            out_while_full()
            state["fault_out"] = True
        elif state["fault_out"] and not state["freed"] and "denied" in kinds(gate.events.recorded):
            state["filler"].unlink()
            state["freed"] = True
        return original(image)

    gate.analyzer.analyse = analyse
    gate.run()
    assert state["freed"]
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    faults = [x for x in lines if x["event"] == "fault"]
    assert len(faults) == 1 and faults[0]["detail"].startswith("storage:"), faults
    states = relay_states(factory)
    assert [k for i, k in enumerate(states) if i == 0 or k != states[i - 1]] == [0, 1, 0]  # let in, relocked
    check = EventStore(db)
    stored = check.all()
    check.close()
    decisions = [k for k in kinds(stored) if k in ("unlocked", "locked", "denied")]
    assert decisions == ["unlocked", "locked", "denied"]
    assert kinds(stored)[0] == "started" and kinds(stored)[-2:] == ["recovered", "stopped"]
    assert "fault" in kinds(stored)
    assert {e.uid for e in gate.events.recorded} <= {e.uid for e in stored}
    order = [e.uid for e in stored]
    for name, received in (("MQTT", lambda: subscriber.json_on(EVENT)), ("webhook", hook.bodies)):
        wait_until(lambda: len(received()) >= len(order), what=f"every event on {name}")
        time.sleep(0.5)  # a repeat would come right after
        got = received()
        assert [m["uid"] for m in got] == order, name  # each event once, in the database's order
        (fault,) = storage_faults(got)
        assert "seq" not in fault, name  # delivered from memory, before it could be written
    assert (subscriber.json_on(STATE) or [{}])[-1].get("fault") is None  # recovered
    alerts = [e.uid for e in stored if e.event in ("denied", "fault")]
    assert sorted(mailed(smtp)) == sorted(alerts) and len(alerts) == 2  # the storage fault and the denial, once
    fault_mail = next(m for m in smtp.messages if "storage:" in m["Subject"])
    assert "goes on deciding and driving its lock" in fault_mail.get_payload(decode=True).decode()  # not "held locked"

    filler = fill(small_disk)  # nothing holds the database open now: it cannot even be opened
    factory.reset()
    subscriber.clear()
    hook.clear()
    smtp.messages.clear()
    again = make_gate(cfg, open_source(str(visit_clip), cfg.camera), factory)
    state.update(filler=filler, fault_out=False, freed=True)
    original_again = again.analyzer.analyse

    def analyse_again(image):
        if not state["fault_out"]:
            out_while_full()
            state["fault_out"] = True
        return original_again(image)

    again.analyzer.analyse = analyse_again
    assert again.run() > 100  # a start on a full disk runs the whole clip
    assert kinds(again.events.recorded).count("fault") == 1 and again.events.storage_fault
    assert relay_states(factory)[-1] == 0
    uids = [e.uid for e in again.events.recorded]
    for name, received in (("MQTT", lambda: subscriber.json_on(EVENT)), ("webhook", hook.bodies)):
        wait_until(lambda: [m["uid"] for m in received()] == uids, what=f"the second run on {name}")
        assert len(storage_faults(received())) == 1, name
    fault = next(e.uid for e in again.events.recorded if e.event == "fault")
    wait_until(lambda: fault in mailed(smtp), what="the second run's storage fault mailed")
    assert mailed(smtp).count(fault) == 1
    filler.unlink()


def test_a_database_a_full_disk_keeps_closed_at_start_is_opened_when_space_returns(small_disk):
    """Not a row of its own: the full-disk row's start on a full disk, down to the store.  A cleanly closed
    database (no WAL, no shared memory file left) cannot be opened on a full disk; the store starts anyway,
    each write is a storage fault, and the first write that finds space opens it and writes what was kept."""
    db = small_disk / "events.db"
    first = EventStore(db)
    EventLog(first).record("started", 0.0)
    first.close()
    assert sorted(p.name for p in small_disk.iterdir()) == ["events.db"]
    filler = fill(small_disk)
    store = EventStore(db)
    assert store.unopened
    log = EventLog(store)
    kept = [log.record("denied", 1.0), log.record("unlocked", 2.0)]
    assert all(e.seq is None for e in kept) and kinds(log.recorded).count("fault") == 1
    filler.unlink()
    log.record("locked", 3.0)
    assert store.unopened is None and log.storage_fault is None
    assert kinds(store.all()) == ["started", "denied", "fault", "unlocked", "recovered", "locked"]
    assert [e.uid for e in store.all()][1] == kept[0].uid
    store.close()
    with pytest.raises(EventStoreError):  # a database that cannot be opened with space left still refuses to start
        EventStore(small_disk)  # a folder, not a database file
