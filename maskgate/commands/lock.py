"""De-energize the lock relay and exit (systemd's ExecStopPost runs this after the gate stops).

With gpio.fail_mode = "secure" a de-energized relay is a locked door; with "safe" (maglocks) it
releases the door, as that fail mode requires.

When the gate did not stop cleanly (SIGKILL, a crash, the watchdog: the event database's last
event is not ``stopped``), a ``locked`` event records that this command de-energized the relay.
"""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--config", action="append", default=[], metavar="FILE")


def main(args) -> int:
    from maskgate.edge import config as config_mod
    from maskgate.edge.actuators import DoorLock, make_pin_factory

    cfg = None
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
    level = "high" if lock.relay.pin.state else "low"
    print(f"lock relay on GPIO{gpio.lock_pin} de-energized (pin {level}): door {state}")
    lock.close()
    if cfg is not None:
        _record_unclean_end(cfg)
    return 0


def _record_unclean_end(cfg) -> None:
    """Best effort: a ``locked`` event after an unclean end of the gate (never fails the command)."""
    from pathlib import Path

    from maskgate.edge.config import state_dir
    from maskgate.edge.events import EventLog, EventStore

    db = Path(cfg.events.database) if cfg.events.database else state_dir() / "events.db"
    if not db.exists():
        return
    try:
        store = EventStore(db, max_events=cfg.events.max_events)
        try:
            last = store.last()
            if last is not None and last.event != "stopped":
                EventLog(store, device=cfg.device.name, door=cfg.device.door_id).record(
                    "locked", last.ts, detail=f"relay de-energized by 'maskgate lock' after the gate ended without "
                                              f"stopping (last event '{last.event}' #{last.seq})")
                print(f"recorded in {db}: the gate had ended without stopping")
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - the relay is already safe; the record is a courtesy
        print(f"maskgate lock: could not record the event: {exc}")
