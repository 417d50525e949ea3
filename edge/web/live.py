"""The live view: frames the gate hands over while someone watches, drawn like ``maskgate annotate``.

The gate's per-frame cost is one attribute read (:attr:`LiveView.armed`) while nobody watches.
A viewer asking for a frame arms the view for :data:`WATCH_SECONDS`; while armed, the gate thread
keeps a copy of at most ``web.live_fps`` frames a second with their faces and the door's state.
Drawing and JPEG encoding happen on one long-lived thread of the view, once per frame however many
watch: not on the server's request threads, a new one per request, where OpenCV would set up its
per-thread state for each picture (measured: ~30 ms of CPU per picture, against 3 ms).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from maskgate.edge.config import Config
from maskgate.edge.crowd import report_for
from maskgate.edge.draw import BLACK, FONT, WHITE, draw_crowd, layout

#: a viewer's request keeps the view armed this long (the page asks again well before)
WATCH_SECONDS = 3.0
#: longest side of the pictures sent: smaller camera frames are enlarged so that labels stay readable (a larger
#: picture costs the gate more: `maskgate bench`, the page open vs closed)
LIVE_LONG_SIDE = 640
MIN_FACE_INK = (233, 180, 86)  # Okabe–Ito sky blue #56B4E9 as BGR: apart from mask blue and no-mask vermillion
JPEG_QUALITY = 80


@dataclass(frozen=True)
class LiveFrame:
    seq: int
    image: np.ndarray  # a copy: the source may reuse its buffer
    faces: tuple
    lock: str  # "locked" | "unlocked"
    decision: str | None  # the current visit's decision: "unlock", "deny" or None (undecided / nobody)
    fault: str | None

    @classmethod
    def capture(cls, seq: int, image: np.ndarray, faces, policy) -> "LiveFrame":
        """The frame and the door's state now (on the gate thread: the image is copied, nothing drawn)."""
        visit = policy.visit
        return cls(
            seq=seq, image=image.copy(), faces=tuple(faces),
            lock="unlocked" if policy.lock_open else "locked",
            decision=visit.decided if visit is not None else None, fault=policy.fault,
        )


class LiveView:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.armed = False  # read by the gate thread on every frame: nothing else happens while False
        self._interval = 1.0 / cfg.web.live_fps
        self._watch_until = 0.0
        self._next_at = 0.0
        self._seq = 0
        self._latest: LiveFrame | None = None  # the newest frame kept, not drawn yet
        self._jpeg: tuple[int, bytes] | None = None  # the newest frame drawn
        self._cond = threading.Condition()
        self._renderer: threading.Thread | None = None
        self._closed = False
        self.offered = 0  # frames kept for the view (tests, the benchmark)

    # -- the gate thread ------------------------------------------------------------------------- #

    def offer(self, image: np.ndarray, faces, policy) -> None:
        """Called by the gate for each frame while :attr:`armed`; keeps one every 1/live_fps s."""
        now = time.monotonic()
        if now < self._next_at:
            return
        if now > self._watch_until:
            self.armed = False  # nobody asked for a while
            return
        self._next_at = now + self._interval
        self._seq += 1
        frame = LiveFrame.capture(self._seq, image, faces, policy)
        with self._cond:
            self._latest = frame
            self.offered += 1
            self._cond.notify_all()

    # -- the server's threads ---------------------------------------------------------------------- #

    def watch(self) -> None:
        self._watch_until = time.monotonic() + WATCH_SECONDS
        self.armed = True
        if self._renderer is None:
            with self._cond:
                if self._renderer is None and not self._closed:
                    self._renderer = threading.Thread(target=self._render_loop, name="maskgate-live", daemon=True)
                    self._renderer.start()

    def jpeg(self, after: int = 0, timeout: float = 2.0) -> tuple[int, bytes] | None:
        """(seq, JPEG) of the annotated frame newer than ``after``, waiting up to ``timeout``; else the newest, or None."""
        self.watch()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jpeg is None or self._jpeg[0] <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._jpeg

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._renderer is not None:
            self._renderer.join(5.0)

    def _render_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._latest is None or (self._jpeg and self._jpeg[0] >= self._latest.seq)):
                    self._cond.wait()
                if self._closed:
                    return
                frame = self._latest
            jpeg = encode_jpeg(frame, self.cfg)
            if jpeg is not None:
                with self._cond:
                    self._jpeg = (frame.seq, jpeg)
                    self._cond.notify_all()


def door_note(frame: LiveFrame) -> str:
    """The header's first words: what the door is doing."""
    if frame.fault:
        return f"FAULT ({frame.fault}), locked"
    state = "UNLOCKED" if frame.lock == "unlocked" else "locked"
    decision = {"unlock": "let in", "deny": "denied"}.get(frame.decision or "", "")
    return f"door {state}" + (f", visitor {decision}" if decision else "")


def render(frame: LiveFrame, cfg: Config) -> np.ndarray:
    """The frame as ``maskgate annotate`` draws it, the door's state in the header, and the min_face size."""
    h, w = frame.image.shape[:2]
    report = report_for(frame.faces, (w, h), cfg.monitor)
    picture = draw_crowd(frame.image, frame.faces, report, min_long_side=LIVE_LONG_SIDE, note=door_note(frame))
    _min_face_marker(picture, layout(w, h, LIVE_LONG_SIDE), cfg.detection.min_face)
    return picture


def encode_jpeg(frame: LiveFrame, cfg: Config) -> bytes | None:
    """The annotated frame (:func:`render`) as JPEG bytes; None if OpenCV cannot encode it."""
    ok, buf = cv2.imencode(".jpg", render(frame, cfg), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return buf.tobytes() if ok else None


def _min_face_marker(canvas: np.ndarray, lay, min_face: int) -> None:
    """A square of ``detection.min_face`` frame pixels in the bottom-left corner: smaller faces are ignored."""
    side = max(2, int(round(min_face * lay.scale)))
    margin = max(4, lay.text_px // 2)
    x1, y2 = margin, lay.height - margin
    y1 = max(lay.header, y2 - side)
    cv2.rectangle(canvas, (x1, y1), (x1 + side, y2), BLACK, lay.line + 2, cv2.LINE_AA)
    cv2.rectangle(canvas, (x1, y1), (x1 + side, y2), MIN_FACE_INK, lay.line, cv2.LINE_AA)
    text = f"min_face {min_face} px"
    font_scale = cv2.getFontScaleFromHeight(FONT, lay.text_px, 1) * 0.8
    (tw, th), base = cv2.getTextSize(text, FONT, font_scale, 1)
    tx = x1 + side + margin
    cv2.rectangle(canvas, (tx - 2, y2 - th - base - 4), (tx + tw + 2, y2), WHITE, -1)
    cv2.putText(canvas, text, (tx, y2 - base - 2), FONT, font_scale, BLACK, 1, cv2.LINE_AA)
