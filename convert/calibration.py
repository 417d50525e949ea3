"""Representative data for int8 calibration: real frames and crops from ../shared, never random data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from maskgate import datasets


def detector_frames(shared: Path, width: int, height: int, count: int = 320, seed: int = 0) -> list[np.ndarray]:
    """``count`` frames resized to the detector input, half wild photos, half doorway frames.

    Both kinds matter: wild photos have many small faces (the 300x300 reference use), doorway frames one
    large face (the gate's use).  Chosen with a fixed seed so a conversion is repeatable.
    """
    rng = np.random.default_rng(seed)
    wild = [img.path for img in datasets.read_voc(shared / "data" / "wild")]
    doorway = [f.path for f in datasets.read_frames(shared / "data" / "encounters")]
    picks = list(rng.choice(wild, count // 2, replace=False)) + list(rng.choice(doorway, count - count // 2, replace=False))
    frames = []
    for p in picks:
        img = cv2.imread(str(p))
        frames.append(cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)[None].astype(np.float32))
    return frames
