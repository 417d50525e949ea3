"""Helpers the fault-matrix tests share: one analyzer for the module, sources that replay arrays."""

from __future__ import annotations

import numpy as np

from maskgate.edge.sources import EndOfStream, Frame, FrameSource


class ArraySource(FrameSource):
    """Replays a list of arrays as they are — whatever their dtype or shape — at ``fps``."""

    live = False
    name = "array-source"

    def __init__(self, images: list, fps: float = 10.0):
        self.images, self.fps, self.i = images, fps, 0

    def open(self) -> None:
        self.i = 0

    def read(self, timeout: float) -> Frame | None:
        if self.i >= len(self.images):
            raise EndOfStream("array source done")
        frame = Frame(self.images[self.i], self.i / self.fps, self.i)
        self.i += 1
        return frame


def black(h: int = 480, w: int = 640) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8)


def kinds(events) -> list[str]:
    return [e.event for e in events]
