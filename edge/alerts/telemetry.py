"""Health numbers for the ``.../telemetry`` topic: frame rate, inference time, CPU temperature, throttling.

CPU temperature and throttling exist only on the boards that report them (a Raspberry Pi); where a
source is absent the field is left out rather than faked or treated as an error.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from maskgate.edge.status import GateStatus

log = logging.getLogger(__name__)

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
THROTTLED_SYSFS = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")

#: bits of the firmware's get_throttled word (Raspberry Pi documentation, "vcgencmd get_throttled")
THROTTLE_BITS = {
    "under_voltage": 0,
    "freq_capped": 1,
    "throttled": 2,
    "soft_temp_limit": 3,
    "under_voltage_occurred": 16,
    "freq_capped_occurred": 17,
    "throttled_occurred": 18,
    "soft_temp_limit_occurred": 19,
}


def cpu_temperature(path: Path = THERMAL_ZONE) -> float | None:
    """CPU temperature in °C from the kernel's thermal zone (millidegrees), or None if there is none."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def parse_throttled(text: str) -> int | None:
    """The throttle word from ``vcgencmd get_throttled`` (``throttled=0x50005``) or sysfs (``50005``)."""
    text = text.strip()
    if "=" in text:
        text = text.split("=", 1)[1]
    try:
        return int(text, 16)
    except ValueError:
        return None


def throttled_word(sysfs: Path = THROTTLED_SYSFS, vcgencmd: str | None = "vcgencmd") -> int | None:
    """The throttle word from sysfs when present, else from ``vcgencmd``; None where neither exists."""
    try:
        return parse_throttled(sysfs.read_text())
    except OSError:
        pass
    exe = shutil.which(vcgencmd) if vcgencmd else None
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=2.0, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_throttled(out)


def decode_throttled(word: int) -> dict[str, Any]:
    """``{"raw": "0x50005", "under_voltage": true, ...}``."""
    out: dict[str, Any] = {"raw": hex(word)}
    out.update({name: bool(word >> bit & 1) for name, bit in THROTTLE_BITS.items()})
    return out


class Telemetry:
    """Builds telemetry payloads; the board's sensors are probed once, then read each time."""

    def __init__(self, *, thermal: Path = THERMAL_ZONE, throttled_sysfs: Path = THROTTLED_SYSFS,
                 vcgencmd: str | None = "vcgencmd"):
        self.thermal = thermal
        self.throttled_sysfs = throttled_sysfs
        self.vcgencmd = vcgencmd
        self.started = time.monotonic()
        self.has_temperature = cpu_temperature(thermal) is not None
        self.has_throttled = throttled_word(throttled_sysfs, vcgencmd) is not None

    def payload(self, status: GateStatus | None) -> dict[str, Any]:
        data: dict[str, Any] = {"v": 1, "ts": round(time.time(), 3), "uptime_s": round(time.monotonic() - self.started, 1)}
        if status is not None:
            data.update({
                "fps": round(float(status.fps), 2),
                "infer_ms": round(float(status.infer_ms), 2),
                "frames": int(status.frames),
                "people": int(status.people),
                "mode": status.mode,
            })
            # monitor mode adds the crowd (left out at the door, where they do not apply)
            for key in ("masked", "masked_share", "violations"):
                value = getattr(status, key, None)
                if value is not None:
                    data[key] = value
        if self.has_temperature:
            temp = cpu_temperature(self.thermal)
            if temp is not None:
                data["cpu_temp_c"] = temp
        if self.has_throttled:
            word = throttled_word(self.throttled_sysfs, self.vcgencmd)
            if word is not None:
                data["throttled"] = decode_throttled(word)
        return data
