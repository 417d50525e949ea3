"""Home Assistant's camera entity (mqtt.camera): the slot on a fake clock, the discovery config, and a real
gate against a real mosquitto with the option on and off."""

from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pytest

from maskgate.edge.alerts.camera import CameraFeed
from maskgate.edge.alerts.discovery import Topics, discovery_messages
from maskgate.edge.config import Config
from maskgate.edge.draw import layout
from maskgate.edge.policy import GatePolicy
from maskgate.edge.web.live import LIVE_LONG_SIDE, LiveFrame, render
from maskgate.errors import ConfigError

from alerts_helpers import Mosquitto, Subscriber, wait_until
from test_gate import StallingCamera, make_gate

BASE = "maskgate/door1"
CAMERA_TOPIC = f"{BASE}/camera"
CAMERA_CONFIG = "homeassistant/camera/maskgate_door1/camera/config"
LOCK_CONFIG = "homeassistant/binary_sensor/maskgate_door1/lock_state/config"  # the lock, a read-only sensor


def door_frame(h: int = 480, w: int = 640) -> np.ndarray:
    """A camera frame with structure (gradients and a few shapes), so a wrong picture shows."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) * 255 // (w + h))], axis=2).astype(np.uint8)
    cv2.rectangle(img, (w // 3, h // 4), (2 * w // 3, 3 * h // 4), (30, 30, 200), -1)
    cv2.circle(img, (w // 2, h // 2), h // 8, (240, 240, 240), -1)
    return img


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a JPEG OpenCV can decode"
    return img


def camera_config(**mqtt) -> Config:
    return Config().replace(device={"name": "door1"}, mqtt={"enabled": True, **mqtt})


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------------------------------------- #
# Without a broker


def test_the_keys_are_validated_and_off_by_default():
    assert Config().mqtt.camera is False
    with pytest.raises(ConfigError) as err:
        Config().replace(mqtt={"camera_interval": 0.5})
    assert err.value.key == "mqtt.camera_interval" and ">= 1" in str(err.value)
    with pytest.raises(ConfigError) as err:
        Config().replace(mqtt={"camera": "yes"})
    assert err.value.key == "mqtt.camera"


def test_the_feed_copies_one_frame_per_interval_and_nothing_in_between():
    cfg = camera_config(camera=True, camera_interval=2.0)
    clock = FakeClock()
    feed = CameraFeed(cfg, clock=clock)
    woken = []
    feed.on_frame = lambda: woken.append(clock.t)
    policy = GatePolicy(cfg.policy)
    image = door_frame()
    published, offered = [], 0
    for i in range(101):  # 10 s of frames at 10 fps; the channel looks after every frame (far more than it does)
        clock.t = 1000.0 + i / 10
        if feed.armed:  # what the gate does on each frame
            feed.offer(image, (), policy)
            offered += 1
        jpeg = feed.poll()
        if jpeg is not None:
            published.append((clock.t, jpeg))
    times = [t for t, _ in published]
    assert len(published) == 5, times  # one frame after each arming: 1000.1, 1002.2, 1004.3, 1006.4, 1008.5
    assert all(b - a >= 2.0 - 1e-9 for a, b in zip(times, times[1:])), times
    assert offered == feed.kept == len(woken) == 5  # one copy per picture: none on the other 96 frames
    lay = layout(640, 480, LIVE_LONG_SIDE)
    assert decode(published[0][1]).shape == (lay.height, lay.width, 3)


def test_a_picture_kept_while_the_broker_was_away_is_replaced_by_a_fresh_one():
    cfg = camera_config(camera=True, camera_interval=5.0)
    clock = FakeClock()
    feed = CameraFeed(cfg, clock=clock)
    policy = GatePolicy(cfg.policy)
    assert feed.poll() is None and feed.armed and feed.wait() is None  # armed: woken by the frame
    feed.offer(door_frame(), (), policy)
    assert not feed.armed and feed.wait() == 0.0
    clock.t += 6.0  # disconnected meanwhile: the channel did not poll
    assert feed.poll() is None and feed.armed  # too old: dropped, a new frame asked for
    feed.offer(door_frame(), (), policy)
    clock.t += 0.1
    assert feed.poll() is not None and not feed.armed
    assert feed.wait() == pytest.approx(5.0)


def test_discovery_announces_the_camera_like_the_other_entities_only_when_asked():
    cfg = camera_config(camera=True)
    topics = Topics.from_config(cfg)
    on = dict(discovery_messages(cfg, topics, camera=True))
    camera, lock = json.loads(on[CAMERA_CONFIG]), json.loads(on[LOCK_CONFIG])
    assert camera["topic"] == CAMERA_TOPIC and camera["unique_id"] == "maskgate_door1_camera"
    assert camera["device"] == lock["device"] and camera["device"]["identifiers"] == ["maskgate_door1"]
    assert camera["availability"] == lock["availability"] and camera["origin"] == lock["origin"]
    assert "image_encoding" not in camera  # raw JPEG bytes, as published
    off = dict(discovery_messages(cfg, topics))
    assert off[CAMERA_CONFIG] == "" and set(off) == set(on)  # off: the entity is removed, nothing else changes


# ---------------------------------------------------------------------------------------------- #
# A real gate, a real broker


@pytest.fixture
def broker(tmp_path):
    pytest.importorskip("paho.mqtt.client")
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def run_gate(tmp_path, factory, cleanup, port: int, **mqtt):
    """The gate on a thread, watching a live (simulated) camera that sends ``door_frame()`` until stopped."""
    cfg = camera_config(url=f"mqtt://127.0.0.1:{port}", reconnect_max_seconds=1, **mqtt).replace(
        events={"database": str(tmp_path / "events.db")})
    gate = make_gate(cfg, StallingCamera(door_frame(), good=10 ** 9), factory)
    runner = threading.Thread(target=gate.run, daemon=True)
    runner.start()
    cleanup(lambda: (gate.stop(), runner.join(30)))

    def stop() -> None:
        gate.stop()
        runner.join(30)
        assert not runner.is_alive()

    return gate, stop


def retained(port: int, topic: str) -> bytes | None:
    """What a newcomer gets on ``topic``: the lock's retained config arrives first as proof it has asked."""
    late = Subscriber(port, [LOCK_CONFIG, topic])
    try:
        wait_until(lambda: late.last(LOCK_CONFIG), what="the retained lock config")
        time.sleep(0.3)
        return late.last(topic)
    finally:
        late.close()


def test_camera_on_announces_and_sends_the_annotated_frame_at_most_once_per_interval(broker, tmp_path, factory,
                                                                                      cleanup):
    sub = Subscriber(broker.port, [CAMERA_TOPIC, "homeassistant/#"])
    cleanup(sub.close)
    t0 = time.monotonic()
    gate, stop = run_gate(tmp_path, factory, cleanup, broker.port, camera=True, camera_interval=1.0)

    config = json.loads(wait_until(lambda: sub.last(CAMERA_CONFIG), what="the camera's discovery config"))
    lock = json.loads(wait_until(lambda: sub.last(LOCK_CONFIG), what="the lock's discovery config"))
    assert config["topic"] == CAMERA_TOPIC and config["unique_id"] == "maskgate_door1_camera"
    assert config["device"] == lock["device"] and config["availability"] == lock["availability"]
    assert config["availability"][0]["topic"] == f"{BASE}/status"

    wait_until(lambda: len(sub.on(CAMERA_TOPIC)) >= 3, timeout=60, what="three pictures")
    stop()
    elapsed = time.monotonic() - t0
    pictures = sub.on(CAMERA_TOPIC)
    # every picture went out between t0 and now, each at least camera_interval after the one before
    assert len(pictures) <= elapsed / 1.0 + 1, (len(pictures), elapsed)
    assert gate.camera_feed.kept <= elapsed / 1.0 + 2  # frames copied: one per picture, not one per frame
    assert gate.frames > gate.camera_feed.kept

    picture = decode(pictures[-1])
    lay = layout(640, 480, LIVE_LONG_SIDE)
    assert picture.shape == (lay.height, lay.width, 3)
    assert (lay.width, lay.height - lay.header) == (640, 480)  # the camera's frame under the page's header
    # drawn as the installer's page draws it: the door locked, nobody in front of it
    expected = render(LiveFrame(1, door_frame(), (), "locked", None, None), gate.cfg)
    assert np.abs(picture.astype(np.int16) - expected).mean() < 4.0  # JPEG noise only
    assert retained(broker.port, CAMERA_TOPIC) is None  # pictures are not retained


def test_camera_off_announces_and_sends_nothing_and_clears_an_earlier_announcement(broker, tmp_path, factory, cleanup):
    earlier = Subscriber(broker.port, [CAMERA_CONFIG])
    cleanup(earlier.close)
    earlier.publish(CAMERA_CONFIG, json.dumps({"topic": CAMERA_TOPIC}), retain=True)  # a run with the camera on
    sub = Subscriber(broker.port, [f"{BASE}/#", "homeassistant/#"])
    cleanup(sub.close)
    gate, stop = run_gate(tmp_path, factory, cleanup, broker.port)  # mqtt.camera left at its default

    wait_until(lambda: sub.last(LOCK_CONFIG), what="the gate's discovery")
    wait_until(lambda: gate.frames >= 30, timeout=60, what="30 frames")
    wait_until(lambda: sub.last(CAMERA_CONFIG) == b"", what="the earlier camera config cleared")
    stop()
    assert gate.camera_feed is None  # nothing to read per frame
    assert sub.on(CAMERA_TOPIC) == []
    camera_configs = [(t, p) for t, p, _ in sub.messages if t.startswith("homeassistant/camera/")]
    assert camera_configs == [(CAMERA_CONFIG, json.dumps({"topic": CAMERA_TOPIC}).encode()), (CAMERA_CONFIG, b"")]
    assert retained(broker.port, CAMERA_CONFIG) is None  # Home Assistant no longer sees a camera
