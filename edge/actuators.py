"""The door's hardware: lock relay, status LEDs, buzzer, exit button, door contact (gpiozero).

Devices say *what* (lock, unlock, show a fault); the pin factory says *how*.  Off a Raspberry Pi the
default factory is gpiozero's own :class:`~gpiozero.pins.mock.MockFactory`, so the whole gate runs —
and is tested, pin history and all — on any Linux box.  gpiozero is imported when the hardware is
built, never at import time.

Fail secure: the lock relay is *de-energized* on every failure path (:meth:`DoorLock.fail`).  With
``fail_mode = "secure"`` (electric strikes, fail-secure locks) a de-energized relay means locked.
With ``fail_mode = "safe"`` (maglocks whose fire code demands that the door opens when the system
fails) the relay is energized to hold the door, and a failure releases it — the gate says so loudly
at start-up.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from pathlib import Path

from maskgate.edge.config import GpioConfig
from maskgate.errors import HardwareError

log = logging.getLogger(__name__)


def on_raspberry_pi() -> bool:
    try:
        return "raspberry pi" in Path("/proc/device-tree/model").read_text(errors="ignore").lower()
    except OSError:
        return False


def make_pin_factory(name: str):
    """The gpiozero pin factory for ``gpio.pin_factory`` (None: gpiozero's own choice on a Pi)."""
    try:
        if name == "auto":
            if on_raspberry_pi():
                return None
            name = "mock"
        if name == "mock":
            from gpiozero.pins.mock import MockFactory, MockPWMPin

            return MockFactory(pin_class=MockPWMPin)
        if name == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        if name == "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory

            return RPiGPIOFactory()
        if name == "pigpio":
            from gpiozero.pins.pigpio import PiGPIOFactory

            return PiGPIOFactory()
        if name == "native":
            from gpiozero.pins.native import NativeFactory

            return NativeFactory()
    except ImportError as exc:
        raise HardwareError(f"gpio.pin_factory '{name}' is not available: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - gpiozero raises assorted errors when the chip is missing
        raise HardwareError(f"gpio.pin_factory '{name}' cannot start: {exc}") from None
    raise HardwareError(f"unknown pin factory {name!r}")


class DoorLock:
    """The lock relay.  ``locked`` is the state the gate asked for; ``fail()`` de-energizes."""

    def __init__(self, pin: int, *, active_high: bool = True, fail_mode: str = "secure", pin_factory=None):
        from gpiozero import OutputDevice

        self.fail_mode = fail_mode
        # Created de-energized: locked for a fail-secure lock; a fail-safe maglock is energized by lock().
        self.relay = OutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)
        self.locked = fail_mode == "secure"
        if fail_mode == "safe":
            self.lock()

    def lock(self) -> None:
        if self.fail_mode == "secure":
            self.relay.off()
        else:
            self.relay.on()
        self.locked = True

    def unlock(self) -> None:
        if self.fail_mode == "secure":
            self.relay.on()
        else:
            self.relay.off()
        self.locked = False

    def fail(self) -> None:
        """De-energize the relay: locked for a fail-secure lock, released for a fail-safe maglock."""
        self.relay.off()
        self.locked = self.fail_mode == "secure"

    @property
    def energized(self) -> bool:
        return bool(self.relay.value)

    def close(self) -> None:
        self.fail()
        self.relay.close()


class StatusLights:
    """Green = unlocked; red for a few seconds = denied; red blinking = fault."""

    def __init__(self, green: int, red: int, *, pin_factory=None):
        from gpiozero import LED

        self.green = LED(green, pin_factory=pin_factory) if green >= 0 else None
        self.red = LED(red, pin_factory=pin_factory) if red >= 0 else None

    def unlocked(self) -> None:
        if self.green:
            self.green.on()
        if self.red:
            self.red.off()

    def locked(self) -> None:
        if self.green:
            self.green.off()

    def denied(self, seconds: float = 3.0) -> None:
        if self.red:
            self.red.blink(on_time=seconds, off_time=0, n=1)

    def fault(self) -> None:
        if self.green:
            self.green.off()
        if self.red:
            self.red.blink(on_time=0.25, off_time=0.25)

    def clear_fault(self) -> None:
        if self.red:
            self.red.off()

    def close(self) -> None:
        for led in (self.green, self.red):
            if led:
                led.close()


class Beeper:
    """The buzzer: three short beeps on deny, one long beep on a fault."""

    def __init__(self, pin: int, *, pin_factory=None):
        from gpiozero import Buzzer

        self.buzzer = Buzzer(pin, pin_factory=pin_factory)

    def denied(self) -> None:
        self.buzzer.beep(on_time=0.1, off_time=0.1, n=3)

    def fault(self) -> None:
        self.buzzer.beep(on_time=1.0, off_time=0, n=1)

    def close(self) -> None:
        self.buzzer.close()


@dataclass(frozen=True)
class InputChange:
    """An exit-button press or a door-contact change, stamped with ``time.monotonic()``."""

    kind: str  # "exit" | "door"
    value: bool  # exit: pressed; door: open
    at: float


class Hardware:
    """All the door's devices, built from ``[gpio]``.  Inputs arrive on :attr:`inputs` (a queue)."""

    def __init__(self, cfg: GpioConfig, pin_factory=None):
        self.cfg = cfg
        self.inputs: queue.SimpleQueue[InputChange] = queue.SimpleQueue()
        self.factory = pin_factory if pin_factory is not None else make_pin_factory(cfg.pin_factory)
        f = self.factory
        self.lock = self.lights = self.beeper = self.exit_button = self.door_contact = None
        try:
            self.lock = DoorLock(cfg.lock_pin, active_high=cfg.lock_active_high, fail_mode=cfg.fail_mode, pin_factory=f)
            self.lights = StatusLights(cfg.green_led, cfg.red_led, pin_factory=f)
            self.beeper = Beeper(cfg.buzzer, pin_factory=f) if cfg.buzzer >= 0 else None
            if cfg.exit_button >= 0:
                from gpiozero import Button

                self.exit_button = Button(cfg.exit_button, pull_up=True, bounce_time=0.05, pin_factory=f)
                self.exit_button.when_pressed = lambda: self.inputs.put(InputChange("exit", True, time.monotonic()))
            if cfg.door_contact >= 0:
                from gpiozero import Button

                # A closed door closes the contact: pin pulled to ground = "pressed" = closed.
                self.door_contact = Button(cfg.door_contact, pull_up=True, bounce_time=0.05, pin_factory=f)
                self.door_contact.when_released = lambda: self.inputs.put(InputChange("door", True, time.monotonic()))
                self.door_contact.when_pressed = lambda: self.inputs.put(InputChange("door", False, time.monotonic()))
        except HardwareError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - gpiozero's errors name the pin; keep the message
            self.close()
            raise HardwareError(f"GPIO setup failed: {exc}") from None

    @property
    def door_open(self) -> bool | None:
        return None if self.door_contact is None else not self.door_contact.is_pressed

    def close(self) -> None:
        """De-energize the lock first, then release every pin.  Safe to call twice."""
        for dev in (self.lock, self.lights, self.beeper, self.exit_button, self.door_contact):
            if dev is not None:
                try:
                    dev.close()
                except Exception:  # noqa: BLE001 - closing must reach every device
                    log.exception("error while releasing %r", dev)
        self.lock = self.lights = self.beeper = self.exit_button = self.door_contact = None
