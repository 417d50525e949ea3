"""Fault matrix: hostile input over MQTT (a real mosquitto), secrets and credentials.
Each test's docstring is its row in docs/faults.md (tests/fault_matrix.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from maskgate.edge.alerts import Notifier
from maskgate.edge.alerts.commands import sign_command
from maskgate.edge.config import Config
from maskgate.errors import ConfigError

from alerts_helpers import Mosquitto, Subscriber, wait_until, write_secret
from fault_helpers import black, kinds
from test_gate import StallingCamera, make_gate, relay_states

pytest.importorskip("paho.mqtt.client")

BASE = "maskgate/door1"
LOCK_SET = f"{BASE}/lock/set"
HA_STATUS = "homeassistant/status"
KEY = b"the-command-key"


def hostile_payloads(now: float) -> list[bytes]:
    """Everything but a fresh command signed with KEY for LOCK_SET."""
    good = json.loads(sign_command(KEY, "unlock", LOCK_SET, ts=now))
    return [
        b"UNLOCK", b"unlock", b"ON", b"\x00\xff\xfe" * 20, b"{", b"[]", b"null", b"1e999", b"[" * 100000,
        b"x" * 1_000_000, json.dumps({"command": "unlock"}).encode(),
        json.dumps({**good, "ts": str(now)}).encode(),
        json.dumps({**good, "nonce": 12345678}).encode(),
        json.dumps({**good, "sig": good["sig"][:-1] + ("0" if good["sig"][-1] != "0" else "1")}).encode(),
        json.dumps({**good, "command": "open"}).encode(),
        b'{"command": "unlock", "ts": NaN, "nonce": "abcdefgh", "sig": "00"}',
        sign_command(KEY, "unlock", LOCK_SET, ts=now - 3600).encode(),  # stale
        sign_command(KEY, "unlock", LOCK_SET, ts=now + 3600).encode(),  # from the future
        sign_command(KEY, "unlock", "maskgate/other/lock/set", ts=now).encode(),  # for another door
        sign_command(b"another key", "unlock", LOCK_SET, ts=now).encode(),
    ]


@pytest.mark.parametrize("remote_unlock", [False, True], ids=["remote-unlock-off", "remote-unlock-on"])
def test_hostile_mqtt_input_never_unlocks_unless_a_fresh_signed_command(tmp_path, factory, cleanup, remote_unlock):
    """Fault: hostile MQTT input on every topic the gate subscribes to.
    Injected: through a real mosquitto with users, on `<base>/lock/set` and `homeassistant/status`: plain UNLOCK,
    binary, broken and deeply nested JSON, 1 MB, wrong types, NaN, bad and foreign signatures, stale and future
    commands, a retained signed command; then one fresh signed command, then the same command again.
    Outcome: the gate keeps running and online; with remote unlock off nothing opens the lock; with it on exactly
    the fresh signed command does, once (`remote_unlock`, relay energized then de-energized): the replay does
    nothing."""
    broker = Mosquitto(tmp_path / "broker", users={"gate": "gate-pw", "desk": "desk-pw"}).start()
    cleanup(broker.stop)
    desk = Subscriber(broker.port, [f"{BASE}/status", f"{BASE}/event"], username="desk", password="desk-pw")
    cleanup(desk.close)
    desk.publish(LOCK_SET, sign_command(KEY, "unlock", LOCK_SET), retain=True)  # waiting for the gate
    cfg = Config().replace(
        device={"name": "door1"}, events={"database": str(tmp_path / "e.db")}, policy={"unlock_seconds": 1.0},
        mqtt={"enabled": True, "url": f"mqtt://127.0.0.1:{broker.port}", "username": "gate",
              "plaintext_credentials": True, "password_file": str(write_secret(tmp_path / "pw", "gate-pw")),
              "remote_unlock": remote_unlock, "command_key_file": str(write_secret(tmp_path / "key", KEY.decode())),
              "reconnect_max_seconds": 1})
    gate = make_gate(cfg, StallingCamera(black(), good=10 ** 9), factory)
    runner = threading.Thread(target=gate.run, daemon=True)
    runner.start()
    cleanup(lambda: (gate.stop(), runner.join(30)))
    wait_until(lambda: desk.last(f"{BASE}/status") == b"online", what="the gate online")
    for topic in (LOCK_SET, HA_STATUS):
        for payload in hostile_payloads(time.time()):
            desk.client.publish(topic, payload, qos=1).wait_for_publish(10)
    desk.publish(LOCK_SET, "", retain=True)
    desk.publish(f"{BASE}/status", "probe")  # a round trip: the gate has had every message
    wait_until(lambda: desk.last(f"{BASE}/status") == b"probe", what="the probe")
    time.sleep(1.0)  # commands are taken on the gate thread, frame by frame
    assert runner.is_alive() and "remote_unlock" not in kinds(gate.events.recorded)
    assert set(relay_states(factory)) == {0}

    fresh = sign_command(KEY, "unlock", LOCK_SET)
    desk.publish(LOCK_SET, fresh)
    if remote_unlock:
        wait_until(lambda: "locked" in kinds(gate.events.recorded), what="the signed unlock and the relock")
    desk.publish(LOCK_SET, fresh)  # replayed
    time.sleep(2.0)
    gate.stop()
    runner.join(30)
    assert not runner.is_alive()
    seen = kinds(gate.events.recorded)
    assert seen.count("remote_unlock") == (1 if remote_unlock else 0), seen
    assert "fault" not in seen
    states = relay_states(factory)
    assert [k for i, k in enumerate(states) if i == 0 or k != states[i - 1]] == ([0, 1, 0] if remote_unlock else [0])


def test_a_secret_file_readable_by_others_is_refused_with_a_line_naming_it(tmp_path):
    """Fault: a secret file (broker password, SMTP password, webhook key) that every user may read.
    Injected: each secret file made mode 644, then `maskgate run` with MQTT, e-mail or the webhook enabled.
    Outcome: exit 1, one line naming the key and the file; at mode 600 the same file is accepted."""
    cases = {
        "mqtt": {"enabled": True, "url": "mqtts://127.0.0.1:8883", "username": "gate", "password_file": "{f}"},
        "email": {"enabled": True, "username": "gate", "password_file": "{f}", "recipients": ["desk@example.com"]},
        "webhook": {"enabled": True, "url": "http://127.0.0.1:9/hook", "secret_file": "{f}"},
    }
    for section, values in cases.items():
        secret = write_secret(tmp_path / f"{section}.secret", "s3cret")
        secret.chmod(0o644)
        key = next(k for k, v in values.items() if v == "{f}")
        conf = tmp_path / f"{section}.toml"
        lines = [f"[{section}]"] + [f"{k} = {json.dumps(str(secret) if v == '{f}' else v)}" for k, v in values.items()]
        conf.write_text("\n".join(lines) + f"\n[events]\ndatabase = '{tmp_path / 'e.db'}'\n")
        r = subprocess.run([sys.executable, "-m", "maskgate", "run", "--config", str(conf), "--source", "demo",
                            "--max-frames", "1"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 1, r.stderr
        out = [x for x in r.stderr.strip().splitlines() if not x.startswith("INFO: Created TensorFlow Lite")]
        assert len(out) == 1 and f"'{section}.{key}'" in out[0] and str(secret) in out[0] and "every user" in out[0]
        secret.chmod(0o600)
        cfg = Config().replace(**{section: {k: (str(secret) if v == "{f}" else v) for k, v in values.items()}})
        from maskgate.edge.events import EventStore

        Notifier(cfg, EventStore(tmp_path / f"{section}.db"))  # accepted (nothing is started)


def test_mqtt_credentials_need_tls_unless_the_config_says_otherwise(tmp_path):
    """Fault: MQTT credentials configured for a plain mqtt:// broker.
    Injected: mqtt.username and mqtt.password_file with an mqtt:// URL.
    Outcome: refused with a ConfigError naming mqtt.url; accepted over mqtts://, or over mqtt:// with
    mqtt.plaintext_credentials = true; remote unlock also needs mqtt.command_key_file."""
    from maskgate.edge.events import EventStore

    store = EventStore(tmp_path / "e.db")
    pw = str(write_secret(tmp_path / "pw", "pw"))
    plain = {"enabled": True, "url": "mqtt://127.0.0.1:1883", "username": "gate", "password_file": pw}
    with pytest.raises(ConfigError) as err:
        Notifier(Config().replace(mqtt=plain), store)
    assert err.value.key == "mqtt.url" and "unencrypted" in str(err.value)
    Notifier(Config().replace(mqtt={**plain, "plaintext_credentials": True}), store)
    Notifier(Config().replace(mqtt={**plain, "url": "mqtts://127.0.0.1:8883"}), store)
    with pytest.raises(ConfigError) as err:
        Notifier(Config().replace(mqtt={**plain, "url": "mqtts://127.0.0.1:8883", "remote_unlock": True}), store,
                 on_command=lambda *a: None)
    assert err.value.key == "mqtt.command_key_file"
