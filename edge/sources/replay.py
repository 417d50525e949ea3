"""Replayed sources: a video file, a folder of images, one image.  Timestamps are ``index / fps``.

Replays run as fast as frames can be read; :class:`PacedSource` delivers them at their own rate
instead (``maskgate run --realtime``), for demos and for measuring what an idle doorway costs.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from maskgate.edge.sources.base import EndOfStream, Frame, FrameSource
from maskgate.errors import ImageError, SourceError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def read_image(path: Path) -> np.ndarray:
    """A colour image as BGR uint8, or :class:`ImageError` naming the file."""
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{path} is not a readable image")
    return img


class VideoFileSource(FrameSource):
    live = False

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        self.name = str(path)
        self.fps = fps
        self._cap = None
        self._index = 0

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SourceError(f"{self.path} cannot be opened as a video")
        self._index = 0

    def read(self, timeout: float) -> Frame | None:
        ok, img = self._cap.read()
        if not ok:
            raise EndOfStream(f"{self.path}: end of file after {self._index} frames")
        f = Frame(img, self._index / self.fps, self._index)
        self._index += 1
        return f

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageListSource(FrameSource):
    """A folder of images (sorted by name) or a single image; an unreadable file is skipped with a
    warning only in a folder — a single image that cannot be read is an error."""

    live = False

    def __init__(self, paths: list[Path], fps: float, name: str):
        self.paths = paths
        self.fps = fps
        self.name = name
        self._index = 0
        self.skipped: list[str] = []

    @classmethod
    def folder(cls, folder: str | Path, fps: float) -> "ImageListSource":
        folder = Path(folder)
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise SourceError(f"no images in {folder}")
        return cls(paths, fps, str(folder))

    def open(self) -> None:
        self._index = 0

    def read(self, timeout: float) -> Frame | None:
        while self._index < len(self.paths):
            path = self.paths[self._index]
            i = self._index
            self._index += 1
            try:
                return Frame(read_image(path), i / self.fps, i)
            except ImageError as exc:
                if len(self.paths) == 1:
                    raise
                self.skipped.append(str(exc))
        raise EndOfStream(f"{self.name}: {len(self.paths)} images done")


class PacedSource(FrameSource):
    """A replayed source delivered in real time: frame ``i`` is returned no earlier than its ``ts``
    after the first one.  Decisions do not change (they follow the frames' timestamps); only the
    wall-clock rate does.  A frame that arrives late is returned at once: pacing never drops frames.
    """

    live = False

    def __init__(self, inner: FrameSource, *, clock=time.monotonic, sleep=time.sleep):
        if inner.live:
            raise SourceError(f"{inner.name} is a live camera: it already delivers frames in real time")
        self.inner = inner
        self.name = inner.name
        self._clock = clock
        self._sleep = sleep
        self._t0: float | None = None

    def open(self) -> None:
        self.inner.open()
        self._t0 = None

    def read(self, timeout: float) -> Frame | None:
        frame = self.inner.read(timeout)
        if frame is None:
            return None
        now = self._clock()
        if self._t0 is None:
            self._t0 = now - frame.ts
        delay = self._t0 + frame.ts - now
        if delay > 0:
            self._sleep(delay)
        return frame

    def close(self) -> None:
        self.inner.close()

    def snapshot(self) -> np.ndarray | None:
        return self.inner.snapshot()
