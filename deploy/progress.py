"""Progress of long copies (``image build``'s copy of the base, ``image flash``'s write and read-back).

Like bmaptool and the Raspberry Pi Imager: bytes done of the total, the rate and the time left, so
that writing a 3 GB card does not look like a hang.  On a terminal one line is redrawn at most twice a
second; otherwise (a log, CI) a line is printed every 10 %.  Nothing is shown with ``-q`` (the
deploy logger above INFO, or :func:`set_shown` from the CLI).  Cheap to call for every chunk.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("maskgate.deploy")

#: set by the CLI (``-q`` hides progress); None: shown when the deploy logger shows INFO
_shown: bool | None = None


def set_shown(shown: bool | None) -> None:
    global _shown
    _shown = shown


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def clock_text(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """``update(done)`` with the bytes done so far; ``finish()`` once at the end."""

    def __init__(self, what: str, total: int, *, stream=None, clock=time.monotonic, interval: float = 0.5,
                 enabled: bool | None = None, tty: bool | None = None):
        self.what, self.total = what, max(int(total), 0)
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.interval = interval
        if enabled is None:
            enabled = log.isEnabledFor(logging.INFO) if _shown is None else _shown
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.start = clock()
        self.done = 0
        self._last_draw = -1e9
        self._next_tenth = 1

    def line(self, done: int | None = None, now: float | None = None) -> str:
        done = self.done if done is None else done
        elapsed = max((self.clock() if now is None else now) - self.start, 1e-6)
        rate = done / elapsed
        parts = [f"{self.what}: {human(done)}"]
        if self.total:
            parts[0] += f" of {human(self.total)} ({100 * done / self.total:.0f} %)"
        parts.append(f"{human(rate)}/s")
        if self.total and rate > 0 and done < self.total:
            parts.append(f"{clock_text((self.total - done) / rate)} left")
        elif done >= self.total:
            parts.append(f"took {clock_text(elapsed)}")
        return ", ".join(parts)

    def update(self, done: int) -> None:
        self.done = done
        if not self.enabled:
            return
        if self.tty:
            now = self.clock()
            if now - self._last_draw >= self.interval:
                self._last_draw = now
                self.stream.write("\r" + self.line(done, now) + "\x1b[K")
                self.stream.flush()
        elif self.total and done * 10 >= self._next_tenth * self.total and done < self.total:
            while done * 10 >= self._next_tenth * self.total:
                self._next_tenth += 1
            self.stream.write(self.line(done) + "\n")
            self.stream.flush()

    def add(self, n: int) -> None:
        self.update(self.done + n)

    def finish(self) -> None:
        if self.enabled:
            self.stream.write(("\r" if self.tty else "") + self.line() + ("\x1b[K\n" if self.tty else "\n"))
            self.stream.flush()


__all__ = ["Progress", "human", "clock_text"]
