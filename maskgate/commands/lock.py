"""De-energize the lock relay and exit (systemd's ExecStopPost runs this after the gate stops).

With gpio.fail_mode = "secure" a de-energized relay is a locked door; with "safe" (maglocks) it
releases the door, as that fail mode requires.
"""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--config", action="append", default=[], metavar="FILE")


def main(args) -> int:
    from maskgate.edge import config as config_mod
    from maskgate.edge.actuators import DoorLock, make_pin_factory

    try:
        cfg = config_mod.load(args.config)
        gpio = cfg.gpio
    except Exception:  # noqa: BLE001 - an unreadable config must not stop us de-energizing the default pin
        from maskgate.edge.config import GpioConfig

        gpio = GpioConfig()
        print("maskgate lock: config unreadable, using the default lock pin")
    lock = DoorLock(gpio.lock_pin, active_high=gpio.lock_active_high, fail_mode=gpio.fail_mode,
                    pin_factory=make_pin_factory(gpio.pin_factory))
    lock.fail()
    state = "locked" if gpio.fail_mode == "secure" else "released (fail-safe)"
    print(f"lock relay on GPIO{gpio.lock_pin} de-energized: door {state}")
    lock.close()
    return 0
