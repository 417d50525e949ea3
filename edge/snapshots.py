"""Snapshots of denied visits (off by default: privacy), with a retention limit."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np


def save_snapshot(folder: Path, image: np.ndarray, frame: int, keep: int) -> Path:
    """Write ``image`` as a JPEG and delete the oldest snapshots beyond ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"denied_{time.strftime('%Y%m%d-%H%M%S')}_{frame:07d}.jpg"
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 85]):
        raise OSError(f"cannot write {path}")
    snaps = sorted(folder.glob("denied_*.jpg"))
    for old in snaps[: max(0, len(snaps) - keep)]:
        old.unlink(missing_ok=True)
    return path
