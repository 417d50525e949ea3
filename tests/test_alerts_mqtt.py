"""MQTT against a real mosquitto on loopback: topics, payloads, discovery, remote unlock, outages."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from maskgate.edge.alerts import Notifier
from maskgate.edge.alerts.commands import sign_command
from maskgate.edge.config import Config
from maskgate.edge.events import EventLog
from maskgate.edge.status import GateStatus

from alerts_helpers import Mosquitto, Subscriber, self_signed_cert, wait_until, write_secret

pytest.importorskip("paho.mqtt.client")

BASE = "maskgate/door1"


class FakeGate:
    """What the gate provides to the notifier: a thread-safe status and a command handler."""

    def __init__(self):
        self.lock = threading.Lock()
        self._status = GateStatus(fps=9.5, infer_ms=42.0, frames=10)
        self.commands: list[tuple[str, dict]] = []

    def status(self) -> GateStatus:
        with self.lock:
            return self._status

    def set(self, **changes):
        with self.lock:
            self._status = GateStatus(**{**self._status.__dict__, **changes})

    def on_command(self, name, payload):
        self.commands.append((name, payload))


def mqtt_config(port: int, **mqtt) -> Config:
    return Config().replace(
        device={"name": "door1", "door_id": "front"},
        mqtt={"enabled": True, "url": f"mqtt://127.0.0.1:{port}", "telemetry_seconds": 1,
              "reconnect_max_seconds": 1, **mqtt},
    )


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def test_topics_payloads_discovery_and_state(broker, store, cleanup):
    sub = Subscriber(broker.port, [f"{BASE}/#", "homeassistant/#"])
    cleanup(sub.close)
    gate = FakeGate()
    log = EventLog(store, device="door1", door="front")
    notifier = Notifier(mqtt_config(broker.port), store, status=gate.status, on_command=gate.on_command)
    log.add_listener(notifier.wake)
    notifier.start()
    cleanup(lambda: notifier.stop(2))

    wait_until(lambda: sub.last(f"{BASE}/status") == b"online", what="online status")
    events = [log.record("started", 0.0)]
    gate.set(lock="unlocked")
    events.append(log.record("unlocked", 1.0, frame=10, decision="masked", p_mask=0.97, faces=1))
    wait_until(lambda: any(s["lock"] == "unlocked" for s in sub.json_on(f"{BASE}/state")), what="state unlocked")
    gate.set(lock="locked")
    events.append(log.record("locked", 6.0, frame=60))
    events.append(log.record("denied", 9.0, frame=90, decision="no_mask", p_mask=0.08, faces=1))

    got = wait_until(lambda: len(sub.json_on(f"{BASE}/event")) >= 4 and sub.json_on(f"{BASE}/event"),
                     what="four events")
    assert [e["uid"] for e in got] == [e.uid for e in events]
    assert [e["event"] for e in got] == ["started", "unlocked", "locked", "denied"]
    assert all(e["v"] == 1 and e["device"] == "door1" and e["door"] == "front" for e in got)
    assert got[1]["p_mask"] == 0.97 and got[1]["frame"] == 10 and got[1]["seq"] == events[1].seq
    decisions = wait_until(lambda: len(sub.json_on(f"{BASE}/decision")) >= 2 and sub.json_on(f"{BASE}/decision"))
    assert [d["event_type"] for d in decisions] == ["unlocked", "denied"]
    assert decisions[1]["decision"] == "no_mask"
    state = wait_until(lambda: (s := sub.json_on(f"{BASE}/state")) and s[-1]["lock"] == "locked" and s[-1])
    assert state["fault"] is None

    telemetry = wait_until(lambda: sub.json_on(f"{BASE}/telemetry"), what="telemetry")[-1]
    assert telemetry["fps"] == 9.5 and telemetry["infer_ms"] == 42.0 and "uptime_s" in telemetry

    node = "maskgate_door1"
    # Each entity's config is its own message: wait for every one of them, not only the first to arrive.
    announced = (f"homeassistant/binary_sensor/{node}/lock_state/config",
                 f"homeassistant/binary_sensor/{node}/problem/config", f"homeassistant/sensor/{node}/fps/config", f"homeassistant/sensor/{node}/inference/config",
                 f"homeassistant/event/{node}/decision/config")
    lock_cfg = json.loads(wait_until(lambda: sub.last(announced[0]), what="lock config"))
    assert lock_cfg["unique_id"] == f"{node}_lock_state" and lock_cfg["device"]["identifiers"] == [node]
    assert lock_cfg["state_topic"] == f"{BASE}/state" and "command_topic" not in lock_cfg
    assert sub.on(f"homeassistant/lock/{node}/lock/config")[-1:] == [b""]  # an older lock entity is removed
    assert lock_cfg["availability"][0]["topic"] == f"{BASE}/status"
    for topic in announced[1:]:
        assert json.loads(wait_until(lambda: sub.last(topic), what=topic))["device"]["identifiers"] == [node], topic

    # A fault shows in the retained state (problem sensor) until it recovers.
    gate.set(fault="camera stalled")
    log.record("fault", 10.0, detail="camera stalled")
    wait_until(lambda: sub.json_on(f"{BASE}/state")[-1]["fault"] == "camera stalled", what="fault state")
    gate.set(fault=None)
    log.record("recovered", 12.0)
    wait_until(lambda: sub.json_on(f"{BASE}/state")[-1]["fault"] is None, what="recovered state")

    # Home Assistant restarts: it announces itself and the gate announces its entities again.
    sub.clear()
    sub.publish("homeassistant/status", "online")
    wait_until(lambda: all(sub.last(topic) for topic in announced), what="discovery republished")
    assert all(json.loads(sub.last(topic))["device"]["identifiers"] == [node] for topic in announced)

    notifier.stop(5)
    wait_until(lambda: sub.last(f"{BASE}/status") == b"offline", what="offline on stop")
    assert store.cursor("mqtt") == store.all()[-1].seq

    # Retained: a newcomer sees the gate offline and its last state at once.
    late = Subscriber(broker.port, [f"{BASE}/status", f"{BASE}/state"])
    cleanup(late.close)
    wait_until(lambda: late.last(f"{BASE}/status") == b"offline" and late.last(f"{BASE}/state"), what="retained")
    assert json.loads(late.last(f"{BASE}/state"))["lock"] == "locked"


def test_broker_killed_mid_run_loses_nothing_and_keeps_order(broker, store, cleanup):
    # A persistent session, saved before the kill, so the test's subscriber misses nothing either.
    sub = Subscriber(broker.port, [f"{BASE}/event"], client_id="observer", clean_session=False)
    cleanup(sub.close)
    broker.save()
    log = EventLog(store, device="door1", door="front")
    notifier = Notifier(mqtt_config(broker.port), store)
    log.add_listener(notifier.wake)
    notifier.start()
    cleanup(lambda: notifier.stop(2))
    wait_until(lambda: notifier.channel("mqtt").ready(), what="connected")

    recorded = [log.record("denied", i, frame=i) for i in range(10)]
    wait_until(lambda: store.cursor("mqtt") == recorded[-1].seq, what="the first events out")
    recorded += [log.record("denied", 10 + i, frame=10 + i) for i in range(20)]
    broker.kill()  # while those are still going out
    recorded += [log.record("denied", 30 + i, frame=30 + i) for i in range(20)]  # during the outage
    assert store.cursor("mqtt") < recorded[-1].seq
    time.sleep(1.0)
    broker.start()
    recorded += [log.record("unlocked", 60 + i, frame=60 + i) for i in range(10)]  # after it is back

    want = [e.uid for e in recorded]
    wait_until(lambda: set(want) <= {e["uid"] for e in sub.json_on(f"{BASE}/event")}, timeout=60,
               what="every event after the restart")
    got = sub.json_on(f"{BASE}/event")
    first_seen: list[str] = []
    for e in got:
        if e["uid"] not in first_seen:
            first_seen.append(e["uid"])
    assert first_seen == want  # in order; any QoS 1 repeats carry the same uid
    seqs = [e["seq"] for e in got]
    assert len(set(zip(seqs, (e["uid"] for e in got)))) == len(set(seqs))  # one uid per seq
    wait_until(lambda: store.cursor("mqtt") == recorded[-1].seq, what="cursor at the end")


def test_broker_down_at_start_then_up(tmp_path, store, cleanup):
    broker = Mosquitto(tmp_path / "late-broker")
    cleanup(broker.stop)
    log = EventLog(store, device="door1", door="front")
    early = [log.record("started", 0.0), log.record("denied", 1.0)]
    notifier = Notifier(mqtt_config(broker.port), store)
    notifier.start()  # returns at once although no broker listens
    cleanup(lambda: notifier.stop(2))
    log.add_listener(notifier.wake)
    broker.start()
    sub = Subscriber(broker.port, [f"{BASE}/event"])
    cleanup(sub.close)
    later = log.record("locked", 2.0)
    # events stored before the subscriber came may already be gone; the cursor proves they went out
    wait_until(lambda: store.cursor("mqtt") == later.seq, what="backlog delivered")
    assert early[-1].seq < later.seq


def test_authenticated_remote_unlock(tmp_path, store, cleanup, caplog):
    caplog.set_level(logging.INFO, logger="maskgate")
    broker = Mosquitto(tmp_path / "auth-broker", users={"gate": "gate-pw", "desk": "desk-pw"}).start()
    cleanup(broker.stop)
    desk = Subscriber(broker.port, [f"{BASE}/#"], username="desk", password="desk-pw")
    cleanup(desk.close)
    # A retained command left on the broker must never open the door when the gate (re)connects.
    desk.publish(f"{BASE}/lock/set", "UNLOCK", retain=True)

    gate = FakeGate()
    cfg = mqtt_config(broker.port, username="gate", remote_unlock=True, plaintext_credentials=True,
                      password_file=str(write_secret(tmp_path / "mqtt.pw", "gate-pw")),
                      command_key_file=str(write_secret(tmp_path / "command.key", "command-key")))
    notifier = Notifier(cfg, store, status=gate.status, on_command=gate.on_command)
    notifier.start()
    cleanup(lambda: notifier.stop(2))
    wait_until(lambda: desk.last(f"{BASE}/status") == b"online", what="authenticated connection")
    desk.publish(f"{BASE}/lock/set", "", retain=True)  # clear the retained command
    signed = sign_command(b"command-key", "unlock", f"{BASE}/lock/set")
    for payload in ("LOCK", "open sesame", "UNLOCK", signed, signed):  # the second signed one is a replay
        desk.publish(f"{BASE}/lock/set", payload)
    wait_until(lambda: gate.commands, what="the unlock command")
    desk.publish(f"{BASE}/status", "probe")  # a round trip after the commands: all have been handled
    wait_until(lambda: desk.last(f"{BASE}/status") == b"probe")
    time.sleep(0.3)
    assert gate.commands == [("unlock", {"source": "mqtt"})]
    assert "ignoring a retained command" in caplog.text and "ignoring LOCK" in caplog.text
    assert "not a signed JSON command" in caplog.text and "replayed" in caplog.text


def test_wrong_password_keeps_events_and_logs(tmp_path, store, cleanup, caplog):
    broker = Mosquitto(tmp_path / "auth-broker", users={"gate": "right"}).start()
    cleanup(broker.stop)
    cfg = mqtt_config(broker.port, username="gate", plaintext_credentials=True,
                      password_file=str(write_secret(tmp_path / "pw", "wrong")))
    log = EventLog(store, device="door1")
    notifier = Notifier(cfg, store)
    log.add_listener(notifier.wake)
    notifier.start()
    cleanup(lambda: notifier.stop(1))
    log.record("denied", 1.0)
    wait_until(lambda: "refused the connection" in caplog.text, what="the refusal in the log")
    notifier.stop(1)
    assert store.cursor("mqtt") == 0 and "wrong" not in caplog.text


def test_tls_broker(tmp_path, store, cleanup):
    cert, key = self_signed_cert(tmp_path)
    broker = Mosquitto(tmp_path / "tls-broker", tls=(cert, key)).start()
    cleanup(broker.stop)
    sub = Subscriber(broker.port, [f"{BASE}/event"], ca_file=cert)
    cleanup(sub.close)
    cfg = mqtt_config(broker.port, url=f"mqtts://127.0.0.1:{broker.port}", ca_file=str(cert))
    log = EventLog(store, device="door1")
    notifier = Notifier(cfg, store)
    log.add_listener(notifier.wake)
    notifier.start()
    cleanup(lambda: notifier.stop(2))
    ev = log.record("denied", 1.0)
    wait_until(lambda: [e["uid"] for e in sub.json_on(f"{BASE}/event")] == [ev.uid], what="the event over TLS")


LWT_SCRIPT = """
import sys, time
from maskgate.edge.alerts import Notifier
from maskgate.edge.alerts.commands import sign_command
from maskgate.edge.config import Config
from maskgate.edge.events import EventStore
cfg = Config().replace(device={"name": "door1"}, mqtt={"enabled": True, "url": "mqtt://127.0.0.1:%d"})
Notifier(cfg, EventStore(sys.argv[1])).start()
time.sleep(120)
"""


def test_last_will_says_offline_when_the_gate_dies(broker, tmp_path, cleanup):
    sub = Subscriber(broker.port, [f"{BASE}/status"])
    cleanup(sub.close)
    proc = subprocess.Popen([sys.executable, "-c", LWT_SCRIPT % broker.port, str(tmp_path / "e.db")])
    cleanup(proc.kill)
    wait_until(lambda: sub.last(f"{BASE}/status") == b"online", timeout=60, what="the gate online")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    wait_until(lambda: sub.last(f"{BASE}/status") == b"offline", timeout=60, what="the last will")


def test_state_follows_events_even_if_status_lags(broker, store, cleanup):
    sub = Subscriber(broker.port, [f"{BASE}/state"])
    cleanup(sub.close)
    log = EventLog(store, device="door1")
    stale = GateStatus(lock="locked")  # a status that has not caught up with the lock yet
    notifier = Notifier(mqtt_config(broker.port), store, status=lambda: stale)
    log.add_listener(notifier.wake)
    notifier.start()
    cleanup(lambda: notifier.stop(2))
    wait_until(lambda: sub.json_on(f"{BASE}/state"), what="the state on connect")
    log.record("unlocked", 1.0)
    wait_until(lambda: sub.json_on(f"{BASE}/state")[-1]["lock"] == "unlocked", what="unlocked state")
    log.record("door_opened", 2.0)
    log.record("locked", 6.0)
    wait_until(lambda: sub.json_on(f"{BASE}/state")[-1]["lock"] == "locked", what="locked state")
    assert sub.json_on(f"{BASE}/state")[-1]["door_open"] is True
