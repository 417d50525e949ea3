"""All three channels at once, the way the gate wires them: a real broker, mail server and HTTP server."""

from __future__ import annotations

import time

import pytest

from maskgate.edge.alerts import Notifier
from maskgate.edge.config import Config
from maskgate.edge.events import EventLog, EventStore
from maskgate.edge.status import GateStatus

from alerts_helpers import Mosquitto, SmtpServer, Subscriber, WebhookServer, drop_proxies, wait_until, write_secret

pytest.importorskip("paho.mqtt.client")
pytest.importorskip("aiosmtpd")

BASE = "maskgate/door1"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    drop_proxies(monkeypatch)


def test_visits_reach_mqtt_mail_and_webhook_through_an_outage(tmp_path, cleanup):
    broker = Mosquitto(tmp_path / "broker").start()
    cleanup(broker.stop)
    smtp = SmtpServer().start()
    cleanup(smtp.stop)
    hook = WebhookServer().start()
    cleanup(hook.stop)
    sub = Subscriber(broker.port, [f"{BASE}/#", "homeassistant/#"], client_id="desk", clean_session=False)
    cleanup(sub.close)
    broker.save()

    cfg = Config().replace(
        device={"name": "door1", "door_id": "front"},
        mqtt={"enabled": True, "url": f"mqtt://127.0.0.1:{broker.port}", "telemetry_seconds": 1,
              "reconnect_max_seconds": 1},
        email={"enabled": True, "host": "127.0.0.1", "port": smtp.port, "starttls": False,
               "recipients": ["desk@example.com"], "min_interval_seconds": 0, "retry_max_seconds": 0.5},
        webhook={"enabled": True, "url": f"http://127.0.0.1:{hook.port}/gate", "retry_max_seconds": 0.5,
                 "secret_file": str(write_secret(tmp_path / "hook.key", "k"))},
    )
    store = EventStore(tmp_path / "events.db")
    log = EventLog(store, device="door1", door="front")
    notifier = Notifier(cfg, store, status=lambda: GateStatus(fps=10.0, infer_ms=30.0))
    log.add_listener(notifier.wake)
    notifier.start()
    cleanup(lambda: notifier.stop(2))

    recorded = [log.record("started", 0.0)]
    denied = []
    for visit in range(3):  # a masked visitor, then one without a mask, three times
        recorded += [log.record("unlocked", 10.0 * visit + 1, decision="masked"),
                     log.record("locked", 10.0 * visit + 6)]
        denied.append(log.record("denied", 10.0 * visit + 8, decision="no_mask"))
        recorded.append(denied[-1])
        wait_until(lambda: len(smtp.messages) == visit + 1, what=f"the mail of visit {visit}")
        if visit == 0:
            broker.kill()  # the broker dies mid-run; the other channels carry on
    recorded.append(log.record("fault", 40.0, detail="camera stalled"))
    wait_until(lambda: len(hook.accepted()) == len(recorded), what="every webhook post")
    assert store.cursor("mqtt") < recorded[-1].seq  # still waiting for the broker
    time.sleep(0.5)
    broker.start()

    want = [e.uid for e in recorded]
    wait_until(lambda: set(want) <= {e["uid"] for e in sub.json_on(f"{BASE}/event")}, timeout=60,
               what="every MQTT event after the restart")
    seen: list[str] = []
    for e in sub.json_on(f"{BASE}/event"):
        if e["uid"] not in seen:
            seen.append(e["uid"])
    assert seen == want
    assert [b["uid"] for b in hook.bodies()] == want
    wait_until(lambda: len(smtp.messages) == len(denied) + 1, what="the mail of the fault")
    mails = [m["X-Maskgate-Event-Uids"] for m in smtp.messages]
    assert mails == [e.uid for e in denied] + [recorded[-1].uid]  # one per denied visit, one for the fault
    wait_until(lambda: sub.last("homeassistant/binary_sensor/maskgate_door1/lock_state/config"),
               what="the lock's discovery config")
    wait_until(lambda: sub.json_on(f"{BASE}/state") and sub.json_on(f"{BASE}/state")[-1]["fault"] == "camera stalled"
               or None, what="the fault in the retained state")

    t0 = time.monotonic()
    notifier.stop(3)
    assert time.monotonic() - t0 < 30  # returns (generous bound: a hang check, not a speed check)
    wait_until(lambda: sub.last(f"{BASE}/status") == b"offline", what="offline")
    store.close()


def test_stop_returns_while_every_server_is_down(tmp_path):
    cfg = Config().replace(
        mqtt={"enabled": True, "url": "mqtt://127.0.0.1:9"},
        email={"enabled": True, "host": "127.0.0.1", "port": 9, "starttls": False, "recipients": ["a@b"]},
        webhook={"enabled": True, "url": "http://127.0.0.1:9/"},
    )
    store = EventStore(tmp_path / "events.db")
    log = EventLog(store)
    notifier = Notifier(cfg, store)
    log.add_listener(notifier.wake)
    notifier.start()
    log.record("denied", 1.0)
    time.sleep(0.5)
    t0 = time.monotonic()
    notifier.stop(1.0)
    assert time.monotonic() - t0 < 30
    assert all(store.cursor(c) == 0 for c in ("mqtt", "email", "webhook"))  # kept for the next run
    store.close()
