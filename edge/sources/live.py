"""Live cameras: OpenCV capture (USB index, RTSP/HTTP URL) and picamera2.

A live camera can block forever (an RTSP stream that went silent, a Pi camera whose cable came
loose), so frames are read on a background thread into a one-slot mailbox; :meth:`read` waits at
most ``timeout`` for a fresh frame and returns ``None`` otherwise — the loop treats that as a stall.
Only the newest frame is kept: a slow analysis never works on a backlog.
"""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np

from maskgate.edge.sources.base import Frame, FrameSource
from maskgate.errors import SourceError

log = logging.getLogger(__name__)


class _Mailbox:
    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self.error: Exception | None = None

    def put(self, item) -> None:
        with self._cond:
            self._item = item
            self._cond.notify()

    def fail(self, exc: Exception) -> None:
        with self._cond:
            self.error = exc
            self._cond.notify()

    def take(self, timeout: float):
        with self._cond:
            if self._item is None and self.error is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item


class ThreadedLiveSource(FrameSource):
    """Base for live sources: subclasses implement ``_open_device``, ``_grab`` (blocking) and ``_close_device``."""

    live = True

    def __init__(self):
        self._box = _Mailbox()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = 0

    def open(self) -> None:
        self._open_device()
        self._box = _Mailbox()
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, name=f"maskgate-camera-{self.name}", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        while not self._stop.is_set():
            try:
                img, ts = self._grab()
            except Exception as exc:  # noqa: BLE001 - reported to the loop as a stall, then reconnect
                self._box.fail(exc)
                return
            if img is None:
                continue
            self._box.put((img, ts))

    def read(self, timeout: float) -> Frame | None:
        item = self._box.take(timeout)
        if item is None:
            if self._box.error is not None:
                log.debug("%s: camera error: %s", self.name, self._box.error)
            return None
        img, ts = item
        f = Frame(img, ts, self._index)
        self._index += 1
        return f

    def close(self) -> None:
        self._stop.set()
        try:
            self._close_device()
        except Exception:  # noqa: BLE001
            log.debug("%s: error while closing", self.name, exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _open_device(self) -> None:
        raise NotImplementedError

    def _grab(self) -> tuple[np.ndarray | None, float]:
        raise NotImplementedError

    def _close_device(self) -> None:
        raise NotImplementedError


class OpenCVCaptureSource(ThreadedLiveSource):
    """A USB camera (``0``, ``1``, ...) or a network stream (``rtsp://``, ``http://``)."""

    def __init__(self, target: int | str, *, width: int, height: int, fps: float):
        super().__init__()
        self.target = target
        self.name = str(target)
        self.width, self.height, self.fps = width, height, fps
        self._cap = None

    def _open_device(self) -> None:
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            raise SourceError(f"camera {self.target!r} cannot be opened")
        if isinstance(self.target, int):
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap

    def _grab(self):
        ok, img = self._cap.read()
        if not ok:
            raise SourceError(f"camera {self.target!r} stopped delivering frames")
        return img, time.monotonic()

    def _close_device(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class Picamera2Source(ThreadedLiveSource):
    """The Raspberry Pi camera: a ``main`` stream for snapshots and a small ``lores`` one for inference.

    picamera2 (from apt: python3-picamera2) is imported only here, when the camera is opened.
    ``RGB888`` arrives in BGR byte order — what OpenCV expects.  The lores stream is YUV420 on a
    Pi 4 (its ISP cannot give RGB there) and converted to BGR, a cheap step at lores size.
    """

    name = "picamera2"

    def __init__(self, *, width: int, height: int, lores_width: int, lores_height: int, fps: float,
                 keep_main: bool = False):
        super().__init__()
        self.keep_main = keep_main  # copy the full-size picture of each frame only when snapshots need it
        self.main_size = (width, height)
        self.lores_size = (lores_width - lores_width % 2, lores_height - lores_height % 2)
        self.fps = fps
        self._cam = None
        self._last_main = None

    def _open_device(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError("picamera2 is not installed (on Raspberry Pi OS: apt install python3-picamera2, "
                              "and create the venv with --system-site-packages)") from exc
        try:
            cams = Picamera2.global_camera_info()
            if not cams:
                raise SourceError("no camera attached (picamera2 found none)")
            cam = Picamera2()
            config = cam.create_video_configuration(
                main={"size": self.main_size, "format": "RGB888"},
                lores={"size": self.lores_size, "format": "YUV420"},
                controls={"FrameRate": float(self.fps)},
                buffer_count=4,
            )
            cam.configure(config)
            cam.start()
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - libcamera errors come in many types
            raise SourceError(f"the Pi camera cannot be started: {exc}") from None
        self._cam = cam

    def _grab(self):
        request = self._cam.capture_request()
        try:
            yuv = request.make_array("lores")
            if self.keep_main:
                self._last_main = request.make_array("main")
            ts_ns = request.get_metadata().get("SensorTimestamp")
        finally:
            request.release()
        img = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)
        return img, (ts_ns / 1e9) if ts_ns else time.monotonic()

    def snapshot(self):
        return self._last_main

    def _close_device(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None
