"""Home Assistant's camera entity: the gate's latest annotated frame, at most once per ``mqtt.camera_interval``.

Off by default (``mqtt.camera``): pictures of the people at the door leave the device.  When on, the
gate's cost between pictures is the read of one flag per frame (:attr:`CameraFeed.armed`), as for
the installer's page.  The MQTT channel's thread arms the feed when a picture is due; the gate
copies its next frame once and disarms it; the channel's thread draws that frame as the page and
``maskgate annotate`` draw it, encodes it as JPEG and publishes it.  Two pictures are always at
least the interval apart; a picture kept while the broker was away and older than the interval is
dropped for a fresh one.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from maskgate.edge.config import Config
from maskgate.edge.web.live import LiveFrame, encode_jpeg


class CameraFeed:
    """A one-frame slot between the gate thread (:meth:`offer`) and the MQTT channel (:meth:`poll`)."""

    def __init__(self, cfg: Config, *, clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.interval = cfg.mqtt.camera_interval
        self.clock = clock
        self.armed = False  # read by the gate thread on every frame: nothing else happens while False
        self.on_frame: Callable[[], None] | None = None  # wakes the channel that publishes (set by it)
        self._lock = threading.Lock()
        self._kept: tuple[float, LiveFrame] | None = None  # (when kept, frame) not published yet
        self._next_at = 0.0  # the first picture as soon as the channel asks
        self._seq = 0
        self.kept = 0  # frames copied for the feed (tests)

    # -- the gate thread ------------------------------------------------------------------------- #

    def offer(self, image: np.ndarray, faces, policy) -> None:
        """Called by the gate for a frame while :attr:`armed`: keeps a copy of it and disarms."""
        self.armed = False
        self._seq += 1
        frame = LiveFrame.capture(self._seq, image, faces, policy)
        with self._lock:
            self._kept = (self.clock(), frame)
            self.kept += 1
        wake = self.on_frame
        if wake is not None:
            wake()  # only sets a flag

    # -- the channel's thread ------------------------------------------------------------------ #

    def wait(self) -> float | None:
        """Seconds until :meth:`poll` has work: 0 with a frame kept, None while armed (:meth:`offer` wakes)."""
        if self._kept is not None:
            return 0.0
        if self.armed:
            return None
        return max(0.0, self._next_at - self.clock())

    def poll(self) -> bytes | None:
        """The JPEG to publish now, if a picture is due and a frame was kept for it; else arms the feed when one is."""
        now = self.clock()
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is not None and now >= self._next_at and now - kept[0] <= self.interval:
            jpeg = encode_jpeg(kept[1], self.cfg)
            self._next_at = now + self.interval
            return jpeg
        if now >= self._next_at:
            self.armed = True
        return None


__all__ = ["CameraFeed"]
