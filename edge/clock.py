"""Is the wall clock trustworthy yet?  A Raspberry Pi has no real-time clock: until NTP corrects it
after boot, ``time.time()`` may be in 1970 or wherever the last shutdown left it.

The gate never times anything with the wall clock (frames carry the camera's or the replay's clock,
the unlock timer and visits run on it, the watchdog is systemd's), so a jump only matters to the
``wall_time`` events carry; each event says with ``clock_synced`` whether that time can be believed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time

#: no synchronised clock reads earlier than this (2025-01-01 UTC): the software is newer
EARLIEST_PLAUSIBLE = 1735689600.0

_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h>: the fields up to the status word, then room for the rest
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("_rest", ctypes.c_char * 512)]


def _load_adjtimex():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.adjtimex
    except (OSError, AttributeError):
        return None


_adjtimex = _load_adjtimex()


def kernel_clock_synchronised() -> bool | None:
    """What the kernel says (NTP / systemd-timesyncd clear STA_UNSYNC); ``None`` where it cannot be asked."""
    if _adjtimex is None:
        return None
    tx = _Timex()
    state = _adjtimex(ctypes.byref(tx))
    if state < 0:
        return None
    return state != _TIME_ERROR and not tx.status & _STA_UNSYNC


def wall_clock_synchronised() -> bool:
    """False when the wall clock is implausibly early or the kernel says it is not synchronised."""
    if time.time() < EARLIEST_PLAUSIBLE:
        return False
    return kernel_clock_synchronised() is not False
