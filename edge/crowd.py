"""Crowd geometry: where people stand, estimated from the size of their faces (a pinhole camera).

A face is about ``face_width_cm`` wide (16 cm), so its width in pixels says how far away it is.
With the camera's horizontal field of view and the image width ``W``:

    f = (W / 2) / tan(fov / 2)           focal length in pixels
    Z = f * face_width / face_px         distance from the camera, along the optical axis
    X = (u - W / 2) * Z / f              sideways, from the face box centre (u, v)
    Y = (v - H / 2) * Z / f              up / down (square pixels: the same f)

Two people closer than ``min_distance_m`` (Euclidean distance of their (X, Y, Z)) are a distancing
violation.  Unlike a fixed pixel threshold this holds for near and far people alike: 200 px between
two faces 100 px wide is 32 cm, between two faces 20 px wide it is 1.6 m.

Pure functions over numbers: no model, no I/O.  The estimate is as good as its assumptions — faces
of typical size, seen roughly from the front, and the real field of view of the camera (a photo
of unknown origin gets the configured one, so its distances are indicative only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Median width / height of the res10 detector's face boxes (unclipped boxes on ../shared/data/wild):
#: a box cut by the left or right image border is sized from its height instead.
BOX_ASPECT = 0.78


def focal_length_px(image_width: int, horizontal_fov_deg: float) -> float:
    """Focal length in pixels of a camera that sees ``horizontal_fov_deg`` across ``image_width`` pixels."""
    if image_width <= 0:
        raise ValueError(f"image width must be positive, got {image_width}")
    if not 0 < horizontal_fov_deg < 180:
        raise ValueError(f"horizontal field of view must be between 0 and 180 degrees, got {horizontal_fov_deg}")
    return (image_width / 2.0) / math.tan(math.radians(horizontal_fov_deg) / 2.0)


def face_width_px(box: Sequence[float], image_width: int) -> float:
    """The face's width in pixels; a box cut by the left or right border is sized from its height."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    if x1 <= 0 or x2 >= image_width - 1:
        return max(w, BOX_ASPECT * h)
    return w


def face_positions(boxes: Sequence[Sequence[float]], image_size: tuple[int, int], *,
                   face_width_cm: float, horizontal_fov_deg: float) -> np.ndarray:
    """(N, 3) camera coordinates in metres (X right, Y down, Z away) of faces with ``boxes`` (x1, y1, x2, y2)."""
    width, height = image_size
    f = focal_length_px(width, horizontal_fov_deg)
    out = np.zeros((len(boxes), 3), np.float64)
    for i, box in enumerate(boxes):
        px = face_width_px(box, width)
        if px <= 0:
            raise ValueError(f"face box {tuple(box)} has no width")
        z = f * (face_width_cm / 100.0) / px
        u = (box[0] + box[2]) / 2.0
        v = (box[1] + box[3]) / 2.0
        out[i] = ((u - width / 2.0) * z / f, (v - height / 2.0) * z / f, z)
    return out


def pairwise_distances(points: np.ndarray) -> np.ndarray:
    """(N, N) Euclidean distances between the rows of ``points``."""
    diff = points[:, None, :] - points[None, :, :]
    return np.sqrt((diff**2).sum(axis=-1))


@dataclass(frozen=True)
class Pair:
    """Two people (indices into the faces) closer than the minimum distance."""

    a: int
    b: int
    distance_m: float

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "distance_m": round(self.distance_m, 2)}


def close_pairs(points: np.ndarray, min_distance_m: float) -> tuple[Pair, ...]:
    """Every pair closer than ``min_distance_m``, closest first."""
    d = pairwise_distances(points)
    a, b = np.nonzero(np.triu(d < min_distance_m, k=1))
    pairs = [Pair(int(i), int(j), float(d[i, j])) for i, j in zip(a, b)]
    return tuple(sorted(pairs, key=lambda p: (p.distance_m, p.a, p.b)))


@dataclass(frozen=True)
class CrowdReport:
    """One picture's crowd: how many people, how many masked, who stands too close to whom."""

    people: int
    masked: int
    positions: tuple[tuple[float, float, float], ...]  # metres, per face (same order as the faces)
    pairs: tuple[Pair, ...]  # closer than min_distance_m, closest first
    min_distance_m: float

    @property
    def unmasked(self) -> int:
        return self.people - self.masked

    @property
    def masked_share(self) -> float | None:
        """Fraction of people masked; None when there is nobody."""
        return self.masked / self.people if self.people else None

    @property
    def violations(self) -> int:
        return len(self.pairs)

    @property
    def too_close(self) -> frozenset[int]:
        """Indices of the faces that are part of at least one violation."""
        return frozenset(i for p in self.pairs for i in (p.a, p.b))

    @property
    def closest_m(self) -> float | None:
        return self.pairs[0].distance_m if self.pairs else None

    def to_json(self) -> dict:
        share = self.masked_share
        return {
            "people": self.people, "masked": self.masked, "unmasked": self.unmasked,
            "masked_share": None if share is None else round(share, 3),
            "violations": self.violations, "people_too_close": len(self.too_close), "min_distance_m": self.min_distance_m,
            "pairs": [p.to_json() for p in self.pairs],
        }

    def summary(self) -> str:
        """``"5 people, 4 masked (80%), 1 pair closer than 1.5 m"``."""
        if not self.people:
            return "nobody"
        people = f"{self.people} {'person' if self.people == 1 else 'people'}"
        pairs = f"{self.violations} {'pair' if self.violations == 1 else 'pairs'} closer than {self.min_distance_m:g} m"
        if self.violations > 1:
            pairs += f" ({len(self.too_close)} people)"
        return f"{people}, {self.masked} masked ({100 * self.masked_share:.0f}%), {pairs}"


def crowd_report(faces, image_size: tuple[int, int], *, face_width_cm: float, horizontal_fov_deg: float,
                 min_distance_m: float) -> CrowdReport:
    """The crowd in a picture of ``image_size`` (width, height) from its faces (anything with ``box`` and ``masked``)."""
    points = face_positions([f.box for f in faces], image_size, face_width_cm=face_width_cm,
                            horizontal_fov_deg=horizontal_fov_deg)
    return CrowdReport(
        people=len(faces),
        masked=sum(bool(f.masked) for f in faces),
        positions=tuple(tuple(round(float(c), 3) for c in p) for p in points),
        pairs=close_pairs(points, min_distance_m) if len(faces) > 1 else (),
        min_distance_m=min_distance_m,
    )


def report_for(faces, image_size: tuple[int, int], monitor, min_distance_m: float | None = None) -> CrowdReport:
    """:func:`crowd_report` with the camera and thresholds of a ``MonitorConfig``."""
    return crowd_report(faces, image_size, face_width_cm=monitor.face_width_cm,
                        horizontal_fov_deg=monitor.horizontal_fov_deg,
                        min_distance_m=monitor.min_distance_m if min_distance_m is None else min_distance_m)
