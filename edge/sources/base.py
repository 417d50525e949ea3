"""The frame source interface.

A source delivers :class:`Frame` objects: a BGR uint8 image (the stream inference runs on), a
timestamp in seconds and an index.  Live sources stamp frames with the camera's clock; replayed
files with ``index / fps``, so decisions do not depend on how fast a file is replayed.

``read(timeout)`` returns ``None`` when a live camera delivered nothing within ``timeout`` (the loop
calls that a stall) and raises :class:`EndOfStream` when a replayed file or folder is exhausted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskgate.errors import SourceError


class EndOfStream(SourceError):
    """A replayed file or folder has no more frames (not an error: the run ends, locked)."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8, H x W x 3
    ts: float  # seconds
    index: int


#: the smallest frame inference can use (the detector's input is 224x168; a face needs pixels)
MIN_WIDTH, MIN_HEIGHT = 64, 48


def unusable_frame(image) -> str | None:
    """Why ``image`` cannot be analysed (wrong type, dtype, shape, too small), or ``None`` when it can.

    Cheap (attribute checks only): it runs on every frame.  A black or white frame is usable (an empty
    doorway, as far as the gate can tell); a truncated JPEG is skipped by the folder source when OpenCV
    cannot decode it, and is a usable, partly grey frame when it can.
    """
    if not isinstance(image, np.ndarray):
        return f"a frame is a {type(image).__name__}, not an image array"
    if image.dtype != np.uint8:
        return f"frames are {image.dtype}, not 8-bit BGR"
    if image.ndim != 3 or image.shape[2] != 3:
        return f"frames have shape {image.shape}, not height x width x 3 (BGR)"
    if image.shape[0] < MIN_HEIGHT or image.shape[1] < MIN_WIDTH:
        return f"frames are {image.shape[1]}x{image.shape[0]}, smaller than {MIN_WIDTH}x{MIN_HEIGHT}"
    return None


class FrameSource:
    """Base class.  Subclasses set ``live`` and implement ``open``, ``read`` and ``close``."""

    live: bool = False
    name: str = "source"

    def open(self) -> None:
        raise NotImplementedError

    def read(self, timeout: float) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def snapshot(self) -> np.ndarray | None:
        """A full-resolution picture for an event snapshot (the main stream), if the source has one."""
        return None

    def __enter__(self) -> "FrameSource":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
