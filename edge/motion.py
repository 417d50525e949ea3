"""A cheap motion gate: skip the detector while the doorway is empty and nothing moves.

An empty doorway is most of a door's day.  Each frame is shrunk to an 80x60 grey thumbnail (into a
preallocated buffer) and compared with the thumbnail of the last analysed frame; if less than
``threshold`` of its pixels changed by more than ``PIXEL_DELTA`` grey levels (sensor noise stays
below), and the last analysis found nobody, the frame is not analysed.  Every ``refresh_seconds``
a frame is analysed anyway, so a change too slow to see never hides a person for long.

Skipping can only ever keep the door locked: the gate unlocks on analysed frames alone.
"""

from __future__ import annotations

import cv2
import numpy as np

THUMB = (80, 60)
PIXEL_DELTA = 12


class MotionGate:
    def __init__(self, threshold: float = 0.02, refresh_seconds: float = 2.0):
        self.threshold = threshold
        self.refresh_seconds = refresh_seconds
        self._thumb = np.empty((THUMB[1], THUMB[0]), np.uint8)
        self._ref = np.empty_like(self._thumb)
        self._diff = np.empty_like(self._thumb)
        self._small = np.empty((THUMB[1], THUMB[0], 3), np.uint8)
        self._have_ref = False
        self._last_analysed_ts = -1e18
        self.skipped = 0

    def should_analyse(self, image: np.ndarray, ts: float, doorway_empty: bool) -> bool:
        cv2.resize(image, THUMB, dst=self._small, interpolation=cv2.INTER_AREA)
        cv2.cvtColor(self._small, cv2.COLOR_BGR2GRAY, dst=self._thumb)
        if not (doorway_empty and self._have_ref) or ts - self._last_analysed_ts >= self.refresh_seconds:
            return self._analyse(ts)
        cv2.absdiff(self._thumb, self._ref, dst=self._diff)
        changed = np.count_nonzero(self._diff > PIXEL_DELTA) / self._diff.size
        if changed >= self.threshold:
            return self._analyse(ts)
        self.skipped += 1
        return False

    def _analyse(self, ts: float) -> bool:
        self._ref, self._thumb = self._thumb, self._ref
        self._have_ref = True
        self._last_analysed_ts = ts
        return True
