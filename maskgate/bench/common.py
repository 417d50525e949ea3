"""What every benchmark row shares: the frames, a row, the config, the rows' names and the targets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from maskgate.errors import DataError

#: Row name → what it is, in the order rows are timed (``seeds`` last: it imports TensorFlow).
ROWS = {
    "ours": "ours: int8 detector + int8 classifier (the gate's analyse)",
    "ours_300x300": "ours with the int8 detector at 300x300",
    "float_tflite": "our float TFLite models, same code path",
    "cv2_res10": "cv2.dnn res10 300x300 alone (float)",
    "cv2_res10_gate_size": "cv2.dnn res10 at the gate's size alone (float)",
    "seeds": "seeds: cv2.dnn 300x300 + Keras MobileNetV2 predict per face",
}
#: What ``--skip`` accepts besides row names.
EXTRAS = ("rss", "idle", "gate_rss", "stages", "eval", "web")
#: The issue's targets (2-core x86, 1 thread, same run).
TARGETS = {"seeds": 5.0, "cv2_res10": 2.0}
IDLE_TARGET_PERCENT = 5.0
GATE_RSS_TARGET_MB = 150.0
EVAL_TARGET_POINTS = 0.5
CLIP_FPS = 10.0
SEEDS_THRESHOLD = 0.5
SEEDS_INPUT = 224

#: How each number is measured (also written into the JSON report).
METHOD = (
    "Frames are kept JPEG-encoded in memory and decoded before each timed call (decoding is not timed). "
    "Every runtime gets the same thread count: TFLite num_threads, cv2.setNumThreads, TensorFlow intra- and "
    "inter-op threads. All rows run in one process on the same frames; each row makes its warm-up calls first, "
    "then the frames are taken in blocks (default 10): each block is run through every row, in an order that "
    "rotates from block to block, so that other load on the machine falls on all rows alike; each call is timed "
    "with time.perf_counter. Peak RSS is per process, so each row's is measured in a "
    "fresh child process that builds that row and runs a few frames; its ru_maxrss comes from os.wait4. The gate "
    "itself (maskgate run) is measured as a subprocess too: peak RSS replaying a doorway clip with a visitor, and "
    "the CPU time of an idle doorway: an empty-doorway clip replayed in real time (--realtime), less the CPU time "
    "of a run that stops after its first frame (start-up and shutdown)."
)


# ---------------------------------------------------------------------------------------------- #
# Frames


@dataclass
class FrameSet:
    """The benchmark's frames: JPEG bytes in memory (a Pi has no room for hundreds of decoded frames)."""

    folder: Path
    names: list[str]
    encoded: list[np.ndarray]
    labels: dict[str, tuple[str, str]]  # name -> (label, source), empty when the folder has no labels.json
    complete: bool = True  # every image of the folder (no --limit)

    @classmethod
    def load(cls, folder: Path, limit: int | None = None) -> "FrameSet":
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"benchmark frames: {folder} is not a folder")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not paths:
            raise DataError(f"benchmark frames: no .jpg or .png images in {folder}")
        labels = {}
        if (folder / "labels.json").is_file():
            from maskgate import datasets

            labels = {f.path.name: (f.label, f.source) for f in datasets.read_frames(folder)}
        complete = limit is None or limit >= len(paths)
        paths = paths[:limit] if limit is not None else paths
        encoded = [np.fromfile(str(p), np.uint8) for p in paths]
        return cls(folder, [p.name for p in paths], encoded, labels, complete)

    def __len__(self) -> int:
        return len(self.names)

    def image(self, i: int) -> np.ndarray:
        img = cv2.imdecode(self.encoded[i % len(self.encoded)], cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"benchmark frames: {self.folder / self.names[i % len(self.names)]} cannot be decoded")
        return img

    @property
    def paths(self) -> list[Path]:
        return [self.folder / n for n in self.names]


# ---------------------------------------------------------------------------------------------- #
# Rows


@dataclass
class Row:
    """One pipeline: ``process(frame)`` is what is timed; ``faces(output)`` counts the detections it
    worked on (for ours: those the classifier ran on; for the seeds: the ``predict`` calls)."""

    name: str
    process: Callable[[np.ndarray], object]
    model_bytes: int
    detail: str
    faces: Callable[[object], int] = len
    info: dict = field(default_factory=dict)


class Skipped(Exception):
    """A row that cannot run here; the message says why."""


def bench_config(configs: list[str], threads: int):
    from maskgate.edge import config as config_mod

    return config_mod.load(list(configs)).replace(models={"threads": threads})


def _file_bytes(*paths: Path) -> int:
    return sum(Path(p).stat().st_size for p in paths)


def float_model_paths(cfg) -> tuple[Path, Path]:
    """The float references of the configured int8 models (detector from the cache, classifier beside the int8 one)."""
    from maskgate.convert.pipeline import float_model_dir
    from maskgate.edge.model_files import model_paths

    det, clf = model_paths(cfg)
    return float_model_dir() / det.name.replace("_int8", "_float"), clf.with_name(clf.name.replace("_int8", "_float"))


def detector_size(path: Path) -> tuple[int, int]:
    """``face_detector_224x168_int8.tflite`` → (224, 168); the gate's default size for other names."""
    m = re.search(r"_(\d+)x(\d+)_", path.name)
    return (int(m.group(1)), int(m.group(2))) if m else (224, 168)
