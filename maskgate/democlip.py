"""The recorded doorway clip the gate replays by default: visitors from ../shared/data/encounters.

A clip is a script of segments — a visitor standing at the door (one encounter frame, shown for a
few seconds with the small movements and sensor noise of a real camera: stepping closer, swaying)
or the empty doorway (a drawn door and wall, with sensor noise and a light flicker) — written as an
MJPG ``.avi`` at 640x480.  Nothing of ../shared is copied into the repository: the clip is built on
first use into the cache (``~/.cache/maskgate/demo``) and rebuilt when the script changes.

The default script: a masked visitor, the empty doorway, a visitor without a mask, the empty
doorway, a visitor with the mask below the nose, the empty doorway, a second masked visitor.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskgate import datasets
from maskgate.errors import DataError, SourceError

FRAME_SIZE = (640, 480)


@dataclass(frozen=True)
class Segment:
    kind: str  # "visitor" | "empty"
    seconds: float
    frame: str = ""  # encounter frame name, for visitors

    @classmethod
    def parse(cls, text: str) -> "Segment":
        """``empty:3`` or ``visitor:0005.jpg:4``."""
        parts = text.split(":")
        try:
            if parts[0] == "empty" and len(parts) == 2:
                return cls("empty", float(parts[1]))
            if parts[0] == "visitor" and len(parts) == 3:
                return cls("visitor", float(parts[2]), parts[1])
        except ValueError:
            pass
        raise DataError(f"clip segment {text!r}: expected empty:SECONDS or visitor:FRAME.jpg:SECONDS")


#: Encounter frames of the default demo: clear pictures from scenes held out of the classifier's
#: training (see maskgate.models.classifier_data.in_validation); labels in ../shared/data/encounters/labels.json.
DEFAULT_SCRIPT = (
    Segment("empty", 2.0),
    Segment("visitor", 4.0, "0010.jpg"),  # with_mask
    Segment("empty", 3.0),
    Segment("visitor", 4.0, "0012.jpg"),  # without_mask
    Segment("empty", 3.0),
    Segment("visitor", 4.0, "0011.jpg"),  # mask_weared_incorrect (below the nose)
    Segment("empty", 3.0),
    Segment("visitor", 4.0, "0074.jpg"),  # with_mask
    Segment("empty", 2.0),
)


def empty_doorway(rng: np.random.Generator | None = None) -> np.ndarray:
    """A drawn doorway: wall, door with handle, floor, soft light from above."""
    w, h = FRAME_SIZE
    img = np.zeros((h, w, 3), np.uint8)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    wall = (np.array([176, 188, 196], np.float32) * (1.05 - 0.25 * yy))[:, None, :]
    img[:] = np.clip(np.broadcast_to(wall, (h, 1, 3)), 0, 255).astype(np.uint8)
    img[int(h * 0.82):] = (92, 104, 118)  # floor
    cv2.rectangle(img, (200, 40), (440, int(h * 0.82)), (40, 70, 110), -1)  # door leaf
    cv2.rectangle(img, (190, 30), (450, int(h * 0.82)), (230, 230, 230), 10)  # frame
    cv2.rectangle(img, (225, 70), (415, 190), (52, 84, 126), 3)  # panels
    cv2.rectangle(img, (225, 220), (415, 360), (52, 84, 126), 3)
    cv2.circle(img, (410, 250), 9, (60, 180, 210), -1)  # handle
    cv2.rectangle(img, (520, 150), (580, 230), (70, 70, 70), -1)  # card reader / sign
    return img


def _noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    out = img.astype(np.int16) + rng.normal(0, sigma, img.shape).astype(np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)


def _visitor_frames(img: np.ndarray, n: int, fps: float, rng: np.random.Generator):
    """The person steps closer during the first second, then stands, swaying a little."""
    w, h = FRAME_SIZE
    img = cv2.resize(img, FRAME_SIZE, interpolation=cv2.INTER_AREA) if img.shape[:2] != (h, w) else img
    for i in range(n):
        t = i / fps
        zoom = 0.92 + 0.08 * min(t, 1.0)
        dx = 6 * np.sin(2 * np.pi * t / 2.3) + rng.normal(0, 0.6)
        dy = 3 * np.sin(2 * np.pi * t / 3.1) + rng.normal(0, 0.6)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.8 * np.sin(2 * np.pi * t / 2.9), zoom)
        m[:, 2] += (dx, dy)
        frame = cv2.warpAffine(img, m, FRAME_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        yield _noisy(frame, rng)


def _empty_frames(n: int, rng: np.random.Generator):
    base = empty_doorway()
    for _ in range(n):
        flicker = rng.uniform(-2, 2)
        yield _noisy(np.clip(base.astype(np.float32) + flicker, 0, 255).astype(np.uint8), rng)


def write_clip(path: str | Path, script: tuple[Segment, ...] | list[Segment], *, fps: float = 10.0,
               encounters: Path | None = None, seed: int = 0) -> Path:
    """Write the clip for ``script`` to ``path`` (MJPG AVI); returns the path."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    encounters = encounters or datasets.shared_dir() / "data" / "encounters"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, FRAME_SIZE)
    if not writer.isOpened():
        raise SourceError(f"cannot write a video to {path}")
    try:
        for seg in script:
            n = max(1, int(round(seg.seconds * fps)))
            if seg.kind == "empty":
                frames = _empty_frames(n, rng)
            else:
                src = encounters / seg.frame
                img = cv2.imread(str(src))
                if img is None:
                    raise DataError(f"clip visitor frame not found or unreadable: {src}")
                frames = _visitor_frames(img, n, fps, rng)
            for frame in frames:
                writer.write(frame)
    finally:
        writer.release()
    os.replace(tmp, path)
    return path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "maskgate" / "demo"


def demo_clip_path(script: tuple[Segment, ...] = DEFAULT_SCRIPT, fps: float = 10.0) -> Path:
    """The default demo clip, built into the cache on first use."""
    key = hashlib.sha256(json.dumps([[s.kind, s.seconds, s.frame] for s in script] + [fps]).encode()).hexdigest()[:12]
    path = cache_dir() / f"doorway_{key}.avi"
    if not path.is_file():
        shared = datasets.shared_dir(required=False)
        if shared is None:
            raise SourceError("the demo clip needs ../shared/data/encounters (set MASKGATE_SHARED), "
                              "or give a camera or file with --source")
        write_clip(path, script, fps=fps, encounters=shared / "data" / "encounters")
    return path
