"""Notifications without servers: config checks, URL override, discovery payloads, telemetry, mail text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from maskgate.edge.alerts import Notifier, mqtt_override, parse_broker_url
from maskgate.edge.alerts.discovery import DECISION_KINDS, Topics, decision_payload, discovery_messages
from maskgate.edge.alerts.mail import compose
from maskgate.edge.alerts.outbox import Backoff, Channel, DeliveryFailed, EventRejected, event_bytes
from maskgate.edge.alerts.telemetry import Telemetry, cpu_temperature, decode_throttled, parse_throttled
from maskgate.edge.alerts.webhook import redacted, sign, verify
from maskgate.edge.config import Config
from maskgate.edge.events import Event, EventLog
from maskgate.edge.status import GateStatus
from maskgate.errors import ConfigError

from alerts_helpers import wait_until, write_secret


# -- broker URL / --mqtt ------------------------------------------------------------------------- #


@pytest.mark.parametrize("url, host, port, tls, user", [
    ("mqtt://broker.local", "broker.local", 1883, False, ""),
    ("mqtt://10.0.0.5:1884", "10.0.0.5", 1884, False, ""),
    ("mqtts://broker:8884/", "broker", 8884, True, ""),
    ("mqtts://gate7@broker", "broker", 8883, True, "gate7"),
])
def test_parse_broker_url(url, host, port, tls, user):
    b = parse_broker_url(url)
    assert (b.host, b.port, b.tls, b.username) == (host, port, tls, user)


@pytest.mark.parametrize("url, why", [
    ("http://broker", "scheme"),
    ("broker:1883", "scheme"),
    ("mqtt://", "no host"),
    ("mqtt://u:secret@broker", "password"),
    ("mqtt://broker:99999", "port"),
    ("mqtt://broker:0", "port"),
    ("mqtt://broker/topic", "path"),
])
def test_parse_broker_url_refuses(url, why):
    with pytest.raises(ConfigError) as err:
        parse_broker_url(url)
    assert err.value.key == "mqtt.url"
    assert why in str(err.value).lower()
    assert "secret" not in str(err.value)


def test_mqtt_override_enables_mqtt_and_keeps_the_rest():
    cfg = Config().replace(mqtt={"topic_prefix": "site"})
    out = mqtt_override(cfg, "mqtt://gate@192.168.1.9:1884")
    assert out.mqtt.enabled and out.mqtt.url == "mqtt://192.168.1.9:1884" and out.mqtt.username == "gate"
    assert out.mqtt.topic_prefix == "site" and cfg.mqtt.enabled is False
    with pytest.raises(ConfigError):
        mqtt_override(cfg, "ftp://x")


# -- Notifier construction ----------------------------------------------------------------------- #


def test_disabled_notifier_has_no_channels_and_stops_cleanly(store):
    n = Notifier(Config(), store)
    assert n.channels == []
    n.start()
    n.wake(None)
    n.stop(timeout=0.1)
    n.stop()  # twice is fine


def test_gate_imports_and_runs_without_paho_when_mqtt_is_off(tmp_path):
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.startswith('paho'): raise ImportError('no paho here')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from maskgate.edge.alerts import Notifier\n"
        "from maskgate.edge.config import Config\n"
        "from maskgate.edge.events import EventStore\n"
        f"cfg = Config().replace(webhook={{'enabled': True, 'url': 'http://127.0.0.1:9/'}})\n"
        f"n = Notifier(cfg, EventStore({str(tmp_path / 'e.db')!r})); n.start(); n.stop(0.1)\n"
        "assert not any(m.startswith('paho') for m in sys.modules)\n"
        "try:\n"
        "    Notifier(Config().replace(mqtt={'enabled': True}), EventStore(':memory:'))\n"
        "except ImportError as e:\n"
        "    print('missing:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "maskgate[alerts]" in out.stdout


def test_remote_unlock_needs_a_broker_user(store):
    cfg = Config().replace(mqtt={"enabled": True, "remote_unlock": True})
    with pytest.raises(ConfigError) as err:
        Notifier(cfg, store, on_command=lambda *a: None)
    assert err.value.key == "mqtt.remote_unlock"


@pytest.mark.parametrize("section, key", [
    ("mqtt", "password_file"), ("email", "password_file"), ("webhook", "secret_file"),
])
def test_missing_secret_file_names_the_key(store, tmp_path, section, key):
    values = {"enabled": True, key: str(tmp_path / "nope")}
    if section == "mqtt":
        values["username"] = "gate"
    if section == "email":
        values.update(username="gate", recipients=["desk@example.com"])
    if section == "webhook":
        values["url"] = "http://127.0.0.1:9/hook"
    with pytest.raises(ConfigError) as err:
        Notifier(Config().replace(**{section: values}), store)
    assert err.value.key == f"{section}.{key}"
    assert "not found" in str(err.value)


def test_empty_secret_file_is_refused(store, tmp_path):
    (tmp_path / "empty").write_text("\n")
    cfg = Config().replace(webhook={"enabled": True, "url": "http://127.0.0.1:9/", "secret_file": str(tmp_path / "empty")})
    with pytest.raises(ConfigError, match="empty") as err:
        Notifier(cfg, store)
    assert err.value.key == "webhook.secret_file"


@pytest.mark.parametrize("sections, key", [
    ({"email": {"enabled": True}}, "email.recipients"),
    ({"email": {"enabled": True, "recipients": ["not-an-address"]}}, "email.recipients[0]"),
    ({"email": {"enabled": True, "recipients": ["a@b"], "ca_file": "/nonexistent.pem"}}, "email.ca_file"),
    ({"webhook": {"enabled": True, "url": "ftp://x/"}}, "webhook.url"),
    ({"webhook": {"enabled": True}}, "webhook.url"),
    ({"mqtt": {"enabled": True, "url": "mqtt://b", "ca_file": "/etc/hostname"}}, "mqtt.ca_file"),
    ({"mqtt": {"enabled": True, "password_file": "/etc/hostname"}}, "mqtt.password_file"),
    ({"mqtt": {"enabled": True, "topic_prefix": "a/+/b"}}, "mqtt.topic_prefix"),
    ({"mqtt": {"enabled": True}, "device": {"name": "front/door"}}, "device.name"),
])
def test_bad_alert_config_is_refused_at_construction(store, sections, key):
    with pytest.raises(ConfigError) as err:
        Notifier(Config().replace(**sections), store)
    assert err.value.key == key


def test_new_config_keys_are_validated():
    with pytest.raises(ConfigError) as err:
        Config().replace(webhook={"retry_max_seconds": 0})
    assert err.value.key == "webhook.retry_max_seconds"


# -- the outbox loop ----------------------------------------------------------------------------- #


def test_backoff_doubles_up_to_the_cap():
    b = Backoff(10)
    assert [b.next() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    b.reset()
    assert b.next() == 1
    assert Backoff(0.5).next() == 0.5


class FlakyChannel(Channel):
    """Fails the first ``failures`` attempts, rejects events whose detail is 'bad', records the rest."""

    name = "flaky"

    def __init__(self, store, failures):
        super().__init__(store, retry_max_seconds=0.5)
        self.failures = failures
        self.got: list[str] = []

    def deliver(self, event):
        if self.failures:
            self.failures -= 1
            raise DeliveryFailed("server down")
        if event.detail == "bad":
            raise EventRejected("never acceptable")
        self.got.append(event.uid)


def test_channel_retries_in_order_skips_rejected_and_keeps_a_cursor(store, caplog):
    log = EventLog(store, device="d", door="front")
    ch = FlakyChannel(store, failures=3)
    log.add_listener(lambda ev: ch.wake())
    ch.start()
    events = [log.record("denied", i, detail="bad" if i == 2 else None) for i in range(5)]
    wait_until(lambda: store.cursor("flaky") == events[-1].seq, what="the channel to catch up")
    ch.request_stop(float("inf"))
    assert ch.join(10)
    assert ch.got == [e.uid for i, e in enumerate(events) if i != 2]
    assert events[2].uid in caplog.text and "skipping" in caplog.text
    # a new channel on the same store resumes after the cursor
    ch2 = FlakyChannel(store, failures=0)
    later = log.record("fault", 9, detail="camera")
    ch2.start()
    wait_until(lambda: ch2.got, what="the second channel")
    ch2.request_stop(float("inf"))
    ch2.join(10)
    assert ch2.got == [later.uid]


def test_events_the_store_could_not_write_go_out_from_memory_once(store):
    """What the notifier does on a full disk (Notifier.wake: offer) and what the event log does once space
    returns (the backlog appended with the same uids): every event out once, in order."""
    log = EventLog(store, device="d", door="front")
    ch = FlakyChannel(store, failures=0)
    first = log.record("denied", 0.0)
    unstored = [Event("denied", 1.0, device="d"), Event("fault", 1.0, detail="storage: full", device="d"),
                Event("unlocked", 2.0, device="d")]
    for ev in unstored[:2]:
        ch.offer(ev)
    assert ch.deliver_pending() is False
    assert ch.got == [first.uid, unstored[0].uid, unstored[1].uid]
    ch.offer(unstored[2])  # not delivered yet when the backlog is written: it goes out from the database
    written = [store.append(ev) for ev in unstored]
    later = log.record("recovered", 3.0)
    ch.deliver_pending()
    assert ch.got == [first.uid, *(e.uid for e in unstored), later.uid]
    assert store.cursor("flaky") == later.seq and ch.unstored.waiting() == []
    assert not any(ch.unstored.reached_database(e) for e in written)  # the uids are forgotten once acknowledged


def test_the_unstored_queue_is_bounded():
    from maskgate.edge.alerts.unstored import UnstoredEvents

    q = UnstoredEvents("t", waiting_limit=3, sent_limit=2)
    events = [Event("denied", float(i)) for i in range(5)]
    for ev in events:
        q.put(ev)
    assert q.waiting() == events[2:] and q.dropped == 2  # the dropped ones still reach the database later
    q.sent(events[2:])
    assert q.waiting() == [] and [q.reached_database(e) for e in events] == [False, False, False, True, True]


def test_the_command_signer_runs_alone_as_home_assistant_runs_it(tmp_path):
    """A copy of commands.py, without maskgate or site-packages, prints a command the gate accepts."""
    from maskgate.edge.alerts import commands

    copy = tmp_path / "maskgate_commands.py"
    copy.write_text(Path(commands.__file__).read_text())
    key = write_secret(tmp_path / "command.key", "the-command-key")
    topic = "maskgate/front-door/lock/set"
    verifier = commands.CommandVerifier(b"the-command-key", max_age=30)
    run = [sys.executable, "-I", "-S", str(copy)]
    out = subprocess.run([*run, str(key), topic], capture_output=True, text=True, timeout=60, check=True).stdout
    assert verifier.verify(topic, out.strip().encode()) == ("unlock", "")
    assert verifier.verify(topic, out.strip().encode())[0] is None  # once
    again = subprocess.run([*run, str(key), "maskgate/back-door/lock/set"], capture_output=True, text=True,
                           timeout=60, check=True).stdout
    assert verifier.verify(topic, again.strip().encode()) == (None, "bad signature")  # signed for another door
    bad = subprocess.run([*run, str(tmp_path / "missing.key"), topic], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "missing.key" in bad.stderr and not bad.stdout


def test_event_bytes_are_strict_json():
    ev = Event("denied", 1.0, p_mask=float("nan"), seq=3, device="d")
    data = json.loads(event_bytes(ev))
    assert data["v"] == 1 and data["seq"] == 3
    assert data["p_mask"] is None  # NaN would not be valid JSON


# -- Home Assistant discovery -------------------------------------------------------------------- #


def _discovery(cfg, **kw):
    topics = Topics.from_config(cfg)
    return topics, {t: (json.loads(p) if p else None) for t, p in discovery_messages(cfg, topics, **kw)}


def test_discovery_payloads():
    cfg = Config().replace(device={"name": "front-door"}, mqtt={"topic_prefix": "site"})
    topics, msgs = _discovery(cfg)
    node = "maskgate_front-door"
    lock = msgs[f"homeassistant/binary_sensor/{node}/lock_state/config"]
    assert lock["unique_id"] == f"{node}_lock_state" and lock["device_class"] == "lock"
    assert lock["device"]["identifiers"] == [node] and lock["device"]["name"] == "front-door"
    assert lock["state_topic"] == "site/front-door/state" and "value_json.lock == 'unlocked'" in lock["value_template"]
    assert lock["availability"] == [{"topic": "site/front-door/status", "payload_available": "online",
                                     "payload_not_available": "offline"}]
    problem = msgs[f"homeassistant/binary_sensor/{node}/problem/config"]
    assert problem["device_class"] == "problem" and problem["state_topic"] == topics.state
    fps = msgs[f"homeassistant/sensor/{node}/fps/config"]
    infer = msgs[f"homeassistant/sensor/{node}/inference/config"]
    assert fps["state_topic"] == infer["state_topic"] == "site/front-door/telemetry"
    assert "fps" in fps["value_template"] and "infer_ms" in infer["value_template"]
    event = msgs[f"homeassistant/event/{node}/decision/config"]
    assert event["state_topic"] == "site/front-door/decision" and set(event["event_types"]) == set(DECISION_KINDS)
    # no door contact wired: the door entity is removed (empty retained config)
    assert msgs[f"homeassistant/binary_sensor/{node}/door/config"] is None
    # nothing offers a command that is always refused: no lock entity (an earlier one is removed), no command topic
    assert msgs[f"homeassistant/lock/{node}/lock/config"] is None
    assert not any("command_topic" in m or "payload_unlock" in m for m in msgs.values() if m)
    unique = [m["unique_id"] for m in msgs.values() if m]
    assert len(unique) == len(set(unique))
    assert all(m["device"]["identifiers"] == [node] for m in msgs.values() if m)


def test_discovery_door_contact_and_temperature():
    cfg = Config().replace(gpio={"door_contact": 5})
    _, msgs = _discovery(cfg, cpu_temperature=True)
    door = msgs["homeassistant/binary_sensor/maskgate_maskgate/door/config"]
    assert door["device_class"] == "door" and "door_open" in door["value_template"]
    temp = msgs["homeassistant/sensor/maskgate_maskgate/cpu_temperature/config"]
    assert temp["unit_of_measurement"] == "°C"


def test_decision_payload_has_event_type():
    ev = Event("denied", 2.0, decision="no_mask", seq=1).to_json()
    assert decision_payload(ev)["event_type"] == "denied" and "event" not in decision_payload(ev)


# -- telemetry ----------------------------------------------------------------------------------- #


def test_telemetry_reads_board_sensors_when_present(tmp_path):
    temp = tmp_path / "temp"
    temp.write_text("51234\n")
    throttled = tmp_path / "get_throttled"
    throttled.write_text("50005\n")
    t = Telemetry(thermal=temp, throttled_sysfs=throttled, vcgencmd=None)
    data = t.payload(GateStatus(fps=9.5, infer_ms=41.0, frames=100))
    assert data["fps"] == 9.5 and data["infer_ms"] == 41.0 and data["cpu_temp_c"] == 51.2
    assert data["throttled"]["raw"] == "0x50005"
    assert data["throttled"]["under_voltage"] and data["throttled"]["throttled"]
    assert data["throttled"]["under_voltage_occurred"] and not data["throttled"]["freq_capped"]


def test_telemetry_omits_absent_sensors(tmp_path):
    t = Telemetry(thermal=tmp_path / "none", throttled_sysfs=tmp_path / "none2", vcgencmd="no-such-vcgencmd")
    data = t.payload(GateStatus())
    assert "cpu_temp_c" not in data and "throttled" not in data and data["fps"] == 0.0
    assert cpu_temperature(tmp_path / "none") is None


def test_parse_throttled_forms():
    assert parse_throttled("throttled=0x0\n") == 0
    assert parse_throttled("80000") == 0x80000
    assert parse_throttled("garbage") is None
    assert decode_throttled(0x8)["soft_temp_limit"] is True


# -- e-mail text, webhook signature -------------------------------------------------------------- #


def test_compose_single_and_digest():
    email = Config().replace(email={"recipients": ["desk@example.com"], "sender": "gate@example.com"}).email
    one = compose([Event("denied", 1.0, decision="no_mask", p_mask=0.1, faces=1, door="front", uid="u1")], email,
                  device="door1", door="front")
    assert "denied" in one["Subject"].lower() and "front" in one["Subject"]
    assert one["To"] == "desk@example.com" and "u1" in one.get_content() and "p_mask 0.10" in one.get_content()
    many = [Event("denied", i, uid=f"u{i}") for i in range(3)] + [Event("fault", 9, detail="camera stalled", uid="f")]
    digest = compose(many, email, device="door1", door="front")
    assert "4 alerts" in digest["Subject"] and "3 denied" in digest["Subject"] and "1 fault" in digest["Subject"]
    assert all(ev.uid in digest.get_content() for ev in many)


def test_webhook_signature_roundtrip():
    body = b'{"event":"denied"}'
    header = sign(b"key", body)
    assert header.startswith("sha256=") and verify(b"key", body, header)
    assert not verify(b"other", body, header) and not verify(b"key", body + b" ", header)
    assert redacted("https://hooks.example.com:8443/T0/secret-token?x=1") == "https://hooks.example.com:8443/..."


def test_secret_is_never_logged(store, tmp_path, caplog):
    secret = write_secret(tmp_path / "hook.key", "s3cr3t-value")
    cfg = Config().replace(webhook={"enabled": True, "url": "http://127.0.0.1:9/token-abc", "secret_file": str(secret),
                                    "retry_max_seconds": 0.5, "timeout_seconds": 0.5})
    log = EventLog(store)
    n = Notifier(cfg, store)
    log.add_listener(n.wake)
    n.start()
    log.record("denied", 1.0)
    wait_until(lambda: "delivery failed" in caplog.text, what="a logged failure")
    n.stop(timeout=0.5)
    assert "s3cr3t" not in caplog.text and "token-abc" not in caplog.text
    assert store.cursor("webhook") == 0  # nothing was lost: it waits in the outbox


def test_cli_module_is_importable_without_side_effects():
    # importing the package must not start threads or touch the network
    import threading

    before = threading.active_count()
    import maskgate.edge.alerts  # noqa: F401
    assert threading.active_count() == before
    assert Path(maskgate.edge.alerts.__file__).parent.joinpath("README.md").exists()


def test_monitor_mode_announces_crowd_sensors_and_no_lock():
    from maskgate.edge.alerts.discovery import Topics, discovery_messages
    from maskgate.edge.config import Config

    cfg = Config().replace(device={"name": "hall"})
    topics = Topics.from_config(cfg)
    gate = dict(discovery_messages(cfg, topics))
    hall = dict(discovery_messages(cfg, topics, mode="monitor"))
    lock_topic = topics.config_topic("binary_sensor", "lock_state")
    people_topic = topics.config_topic("sensor", "people")
    assert gate[lock_topic] and not gate[people_topic]
    assert hall[lock_topic] == "" and "value_json.people" in hall[people_topic]
    assert gate[topics.config_topic("lock", "lock")] == hall[topics.config_topic("lock", "lock")] == ""
    assert "masked_share" in hall[topics.config_topic("sensor", "masked_share")]
