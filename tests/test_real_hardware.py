"""Tests for a real Raspberry Pi: the Pi camera, the GPIO pins and the Edge TPU.

They skip cleanly anywhere else (like gpiozero's tests/test_real_pins.py).  On a Pi, with the relay
board *disconnected from the lock*, run: ``MASKGATE_REAL_PINS=1 python -m pytest tests/test_real_hardware.py``.
"""

from __future__ import annotations

import os
import time

import pytest

from maskgate.edge.actuators import on_raspberry_pi

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(not on_raspberry_pi(), reason="needs a Raspberry Pi"),
]


def test_pi_camera_delivers_bgr_frames_with_sensor_timestamps():
    pytest.importorskip("picamera2")
    from maskgate.edge.config import CameraConfig
    from maskgate.edge.sources.live import Picamera2Source

    cfg = CameraConfig()
    cam = Picamera2Source(width=cfg.width, height=cfg.height, lores_width=cfg.lores_width,
                          lores_height=cfg.lores_height, fps=cfg.fps)
    with cam:
        frames = [cam.read(2.0) for _ in range(5)]
    assert all(f is not None for f in frames)
    assert frames[0].image.shape == (cfg.lores_height, cfg.lores_width, 3)
    assert frames[-1].ts > frames[0].ts
    assert cam.snapshot().shape[:2] == (cfg.height, cfg.width)


@pytest.mark.skipif(os.environ.get("MASKGATE_REAL_PINS") != "1", reason="set MASKGATE_REAL_PINS=1 (relay disconnected)")
def test_relay_pin_follows_lock_and_fail_on_real_pins():
    from maskgate.edge.actuators import DoorLock, make_pin_factory

    lock = DoorLock(17, pin_factory=make_pin_factory("lgpio"))
    try:
        lock.unlock()
        time.sleep(0.05)
        assert lock.energized
        lock.fail()
        assert not lock.energized and lock.locked
    finally:
        lock.close()


def test_edgetpu_delegate_loads_when_a_coral_is_attached():
    from maskgate.edge.runtime import EDGETPU_LIBRARY, _import_runtime

    _, load_delegate, _ = _import_runtime()
    try:
        load_delegate(EDGETPU_LIBRARY)
    except (ValueError, OSError):
        pytest.skip("no Edge TPU (libedgetpu or the device is missing)")
