"""Telling systemd how the gate is doing (sd_notify), in pure stdlib.

The unit is ``Type=notify`` with ``WatchdogSec=``: the gate calls :meth:`SystemdNotifier.ready` once
the camera and the models are up, :meth:`~SystemdNotifier.watchdog` for every processed frame (cheap:
at most one datagram per quarter of the watchdog interval), :meth:`~SystemdNotifier.status` when its
state changes and :meth:`~SystemdNotifier.stopping` on the way out.  If frames stop, the pings stop,
and systemd restarts the service (its ``ExecStopPost=`` locks the door).

Outside systemd (``$NOTIFY_SOCKET`` unset) every method does nothing and returns False.  Sending never
raises: a gate must not fall over because its supervisor went away.

    notifier = SystemdNotifier()
    notifier.ready("watching the door")
    for frame in frames:
        ...
        notifier.watchdog()
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class SystemdNotifier:
    """sd_notify over an AF_UNIX datagram socket (``$NOTIFY_SOCKET``; '@' means the abstract namespace).

    ``watchdog_interval`` is the watchdog period in seconds; by default it comes from ``$WATCHDOG_USEC``
    (ignored when ``$WATCHDOG_PID`` names another process).  Without one, :meth:`watchdog` sends nothing.
    """

    def __init__(self, socket_path: str | None = None, *, watchdog_interval: float | None = None,
                 environ: dict[str, str] | None = None, clock: Callable[[], float] = time.monotonic):
        env = os.environ if environ is None else environ
        self.socket_path = env.get("NOTIFY_SOCKET", "") if socket_path is None else socket_path
        if watchdog_interval is None:
            watchdog_interval = _watchdog_from_env(env)
        self.watchdog_interval = watchdog_interval
        # systemd's advice is to ping at half the interval; a quarter leaves room for a slow frame.
        self.min_ping_interval = watchdog_interval / 4 if watchdog_interval else None
        self._clock = clock
        self._last_ping: float | None = None
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notification socket."""
        return bool(self.socket_path)

    @property
    def watchdog_enabled(self) -> bool:
        return self.enabled and bool(self.watchdog_interval)

    # -- the messages ---------------------------------------------------------------------- #

    def ready(self, status: str | None = None) -> bool:
        """Start-up is complete (camera open, models loaded): systemd marks the unit active."""
        fields = ["READY=1"] + ([f"STATUS={_one_line(status)}"] if status else [])
        sent = self.notify(*fields)
        if sent:
            self._last_ping = self._clock()
        return sent

    def watchdog(self) -> bool:
        """Keep-alive; call it for every processed frame.  Sends at most once per quarter interval."""
        if not self.watchdog_enabled:
            return False
        now = self._clock()
        if self._last_ping is not None and now - self._last_ping < self.min_ping_interval:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status maskgate``."""
        return self.notify(f"STATUS={_one_line(text)}")

    def stopping(self, status: str | None = None) -> bool:
        """The gate is shutting down (the lock is being released to its de-energized state)."""
        return self.notify(*(["STOPPING=1"] + ([f"STATUS={_one_line(status)}"] if status else [])))

    def reloading(self, status: str | None = None) -> bool:
        """The gate restarts with a new config (READY=1 follows): systemd keeps the unit, unlike STOPPING=1."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(*(["RELOADING=1", f"MONOTONIC_USEC={usec}"] + ([f"STATUS={_one_line(status)}"] if status else [])))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time to start or stop (e.g. a slow first model load on a Pi Zero)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; False if not under systemd or the send failed."""
        if not self.enabled:
            return False
        address = "\0" + self.socket_path[1:] if self.socket_path.startswith("@") else self.socket_path
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode("utf-8"), address)
            return True
        except OSError as exc:
            if not self._warned:  # once: a gate sends this every frame
                log.warning("cannot notify systemd at %s: %s", self.socket_path, exc.strerror or exc)
                self._warned = True
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "SystemdNotifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _watchdog_from_env(env) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None  # the watchdog is meant for another process (e.g. we are a child of the gate)
    return int(usec) / 1_000_000


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


__all__ = ["SystemdNotifier"]
