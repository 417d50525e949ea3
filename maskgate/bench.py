"""How fast the gate is, side by side with what it replaces, measured in one run on the same frames.

Rows (see :data:`ROWS`):

* ``ours`` — the gate's per-frame path, :meth:`FrameAnalyzer.analyse` as ``maskgate run`` builds it
  (resize into the interpreter's input, int8 detector, decode/NMS, crops, int8 classifier);
* ``seeds`` — the tutorials' pipeline the project started from: cv2.dnn res10 in float at 300x300,
  threshold 0.5, then for each face a 224x224 RGB crop → Keras MobileNetV2 (alpha 1.0, untrained
  weights: only the cost matters) called with ``predict`` per face.  Needs the optional TensorFlow
  extra; TensorFlow is imported for this row only, after the other rows are timed;
* ``cv2_res10`` — cv2.dnn res10 alone, float, 300x300: the strongest off-the-shelf runtime for the
  same detector; ``cv2_res10_gate_size`` — the same at the gate's detector size, to separate what
  the smaller input buys from what the runtime and int8 buy;
* ``ours_300x300`` — the same path with the int8 detector at res10's reference size: what the
  doorway's smaller input buys;
* ``float_tflite`` — our float TFLite models through the same code path: what quantization buys.

How each number is measured: :data:`METHOD` (also in the JSON report and docs/performance.md).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from maskgate.errors import DataError, DependencyMissing, MaskgateError

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
EXTRAS = ("rss", "idle", "gate_rss", "stages", "eval")
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
    w, h = detector_size(det)
    return float_model_dir() / f"face_detector_{w}x{h}_float.tflite", clf.with_name(clf.name.replace("_int8", "_float"))


def detector_size(path: Path) -> tuple[int, int]:
    """``face_detector_224x168_int8.tflite`` → (224, 168); the gate's default size for other names."""
    m = re.search(r"_(\d+)x(\d+)_", path.name)
    return (int(m.group(1)), int(m.group(2))) if m else (224, 168)


def row_ours(cfg) -> Row:
    from maskgate.edge.model_files import build_analyzer, model_paths

    analyzer = build_analyzer(cfg)
    det, clf = model_paths(cfg)
    return Row("ours", analyzer.analyse, _file_bytes(det, clf), _models_detail(analyzer),
               faces=_classified, info={"analyzer": analyzer})


def row_ours_300(cfg) -> Row:
    """The gate's path with the reference-size int8 detector: what the doorway size buys."""
    from maskgate.edge.model_files import artifact_dir, build_analyzer, model_paths

    det = artifact_dir() / "face_detector_300x300_int8.tflite"
    if not det.is_file():
        raise Skipped(f"{det} not found")
    if model_paths(cfg)[0].resolve() == det.resolve():
        raise Skipped("the gate already runs the 300x300 detector (that is the ours row)")
    analyzer = build_analyzer(cfg, detector=det)
    clf = model_paths(cfg)[1]
    return Row("ours_300x300", analyzer.analyse, _file_bytes(det, clf), _models_detail(analyzer),
               faces=_classified)


def row_float(cfg) -> Row:
    from maskgate.edge.model_files import build_analyzer

    fdet, fclf = float_model_paths(cfg)
    missing = [p for p in (fdet, fclf) if not p.is_file()]
    if missing:
        raise Skipped(f"float models not found ({', '.join(map(str, missing))}); "
                      "`maskgate convert` makes them")
    analyzer = build_analyzer(cfg, detector=fdet, classifier=fclf)
    return Row("float_tflite", analyzer.analyse, _file_bytes(fdet, fclf), _models_detail(analyzer),
               faces=_classified, info={"analyzer": analyzer})


def _classified(result) -> int:
    """Faces at the door plus the detections the classifier called "not a face" (the classifier's calls,
    less the weak extra faces the analyzer drops without counting them)."""
    return len(result.faces) + result.rejected


def _models_detail(analyzer) -> str:
    d, c = analyzer.detector.model, analyzer.classifier.model
    where = f" on {d.delegate}" if d.delegate else ""
    return (f"{d.path.name} {d.input_shape[2]}x{d.input_shape[1]} + {c.path.name} {c.input_shape[1]}x{c.input_shape[2]}"
            f" ({d.runtime}{where})")


def _res10_files() -> tuple[Path, Path]:
    from maskgate import datasets
    from maskgate.convert.detector import face_detector_files

    shared = datasets.shared_dir(required=False)
    if shared is None:
        raise Skipped("../shared not found (set MASKGATE_SHARED): it holds OpenCV's res10 model")
    pb, pbtxt = face_detector_files(shared)
    if not pb.is_file() or not pbtxt.is_file():
        raise Skipped(f"OpenCV's res10 model not found ({pb})")
    return pb, pbtxt


def row_cv2(width: int = 300, height: int = 300, name: str = "cv2_res10") -> Row:
    from maskgate.convert.parity import OpenCVReference

    pb, pbtxt = _res10_files()
    net = OpenCVReference(pb, pbtxt, width, height)  # a fresh net per input size (OpenCV 5 reuses shapes)
    return Row(name, lambda frame: net(frame, SEEDS_THRESHOLD), _file_bytes(pb, pbtxt),
               f"cv2.dnn {cv2.__version__} res10 {width}x{height}, threshold {SEEDS_THRESHOLD}",
               faces=lambda out: len(out[0]))


class SeedsPipeline:
    """The tutorials' mask detector: cv2.dnn res10 → per face a MobileNetV2 ``predict`` call."""

    def __init__(self, threads: int):
        from maskgate.convert.parity import OpenCVReference

        pb, pbtxt = _res10_files()
        try:
            from maskgate.models._tf import import_keras, import_tensorflow

            tf = import_tensorflow()
        except DependencyMissing:
            raise Skipped("TensorFlow is not installed (the optional train extra: pip install -e '.[train]')") from None
        self.note = ""
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError as exc:  # TensorFlow already ran something in this process
            self.note = f"TensorFlow threads could not be set: {exc}"
        keras = import_keras()
        self.keras = keras
        self.model = keras.applications.MobileNetV2(input_shape=(SEEDS_INPUT, SEEDS_INPUT, 3), alpha=1.0,
                                                    weights=None, classes=2)
        self.preprocess = keras.applications.mobilenet_v2.preprocess_input
        self.net = OpenCVReference(pb, pbtxt, 300, 300)
        self.files = (pb, pbtxt)
        self.tf_version = tf.__version__

    def __call__(self, frame: np.ndarray) -> list[np.ndarray]:
        h, w = frame.shape[:2]
        boxes, _ = self.net(frame, SEEDS_THRESHOLD)
        preds = []
        for box in boxes:
            x1, y1, x2, y2 = (box * np.array([w, h, w, h])).astype(int)
            x1, y1 = max(0, x1), max(0, y1)
            x2, y2 = min(w - 1, x2), min(h - 1, y2)
            face = frame[y1:y2, x1:x2]
            if face.size == 0:
                continue
            face = cv2.resize(cv2.cvtColor(face, cv2.COLOR_BGR2RGB), (SEEDS_INPUT, SEEDS_INPUT))
            x = self.preprocess(face.astype(np.float32))[None]
            preds.append(self.model.predict(x, verbose=0)[0])
        return preds


def row_seeds(threads: int) -> Row:
    s = SeedsPipeline(threads)
    weights = s.model.count_params() * 4
    row = Row("seeds", s, _file_bytes(*s.files) + weights,
              f"cv2.dnn res10 300x300 + MobileNetV2 alpha 1.0 224x224 (TensorFlow {s.tf_version}), predict per face; "
              f"model bytes count MobileNetV2's {s.model.count_params():,} weights as float32")
    if s.note:
        row.info["note"] = s.note
    return row


def build_row(name: str, cfg, threads: int) -> Row:
    if name == "ours":
        return row_ours(cfg)
    if name == "ours_300x300":
        return row_ours_300(cfg)
    if name == "float_tflite":
        return row_float(cfg)
    if name == "cv2_res10":
        return row_cv2()
    if name == "cv2_res10_gate_size":
        from maskgate.edge.model_files import model_paths

        return row_cv2(*detector_size(model_paths(cfg)[0]), name)
    if name == "seeds":
        return row_seeds(threads)
    raise ValueError(f"unknown benchmark row {name!r}")


# ---------------------------------------------------------------------------------------------- #
# Timing


def time_rows(rows: dict[str, Row], frames: FrameSet, *, warmup: int, block: int,
              progress: Callable[[str], None] = lambda s: None) -> tuple[dict[str, list[float]], dict[str, list]]:
    """Per-frame wall times (ms) and outputs of every row on every frame.

    Each row first makes ``warmup`` untimed calls.  Then the frames are taken in blocks of ``block``:
    each block is decoded once and run through every row, the rows in an order that rotates from
    block to block.  Other load on the machine therefore falls on all rows alike, while each row
    still runs several frames in a row (its weights stay in cache, as on the gate).  ``block`` 0
    times each row over all frames before the next.
    """
    names = list(rows)
    for name in names:
        for i in range(warmup):
            rows[name].process(frames.image(i))
    n = len(frames)
    times = {name: [0.0] * n for name in names}
    outputs: dict[str, list] = {name: [None] * n for name in names}
    size = block if block > 0 else n
    pc = time.perf_counter
    for b, start in enumerate(range(0, n, size)):
        idx = range(start, min(start + size, n))
        if block <= 0:
            imgs = None
        else:
            imgs = [frames.image(i) for i in idx]
            if b % 10 == 0:
                progress(f"timing frames {start + 1}-{n if start + 10 * size >= n else start + 10 * size} of {n}")
        k = b % len(names) if names else 0
        for name in names[k:] + names[:k]:
            process = rows[name].process
            if imgs is None:
                progress(f"timing {name} on {n} frames")
            for j, i in enumerate(idx):
                img = imgs[j] if imgs is not None else frames.image(i)
                t0 = pc()
                out = process(img)
                times[name][i] = (pc() - t0) * 1000.0
                outputs[name][i] = out
    return times, outputs


def summarise(times_ms: list[float]) -> dict:
    t = np.asarray(times_ms, np.float64)
    return {
        "median_ms": round(float(np.median(t)), 3),
        "p95_ms": round(float(np.percentile(t, 95)), 3),
        "mean_ms": round(float(t.mean()), 3),
        "min_ms": round(float(t.min()), 3),
        "max_ms": round(float(t.max()), 3),
        "fps": round(1000.0 * len(t) / float(t.sum()), 2),
        "timed_frames": int(len(t)),
    }


def _classified_boxes(analyzer, img: np.ndarray, boxes: np.ndarray) -> list:
    """The boxes ``analyse`` runs the classifier on (its own selection, recomputed untimed)."""
    if hasattr(analyzer, "candidates"):
        return [c.box for c in analyzer.candidates(img)]
    return list(boxes[(boxes[:, 2] - boxes[:, 0]) >= analyzer.min_face])


def stage_breakdown(analyzer, frames: FrameSet, limit: int = 200) -> dict:
    """Median ms of each step of ``analyse``, timed one by one on the same frames."""
    from maskgate.edge.crops import face_crop
    from maskgate.edge.detector import to_frame_pixels

    det, clf = analyzer.detector, analyzer.classifier
    scratch = np.empty((det.height, det.width, 3), np.uint8)
    pre, run, inv, dec, crop, cls = [], [], [], [], [], []
    pc = time.perf_counter
    for i in range(min(len(frames), limit)):
        img = frames.image(i)
        t0 = pc()
        cv2.resize(img, (det.width, det.height), dst=scratch, interpolation=cv2.INTER_LINEAR)
        t1 = pc()
        loc, scores = det.run(img)
        t2 = pc()
        det.model.invoke()  # the same input again: the network alone
        t3 = pc()
        boxes, sc = det.decode(loc, scores)
        boxes, sc = to_frame_pixels(boxes, sc, img.shape[1], img.shape[0])
        t4 = pc()
        pre.append(t1 - t0)
        run.append(t2 - t1)
        inv.append(t3 - t2)
        dec.append(t4 - t3)
        for box in _classified_boxes(analyzer, img, boxes):
            t5 = pc()
            face_crop(img, box, clf.margin, clf.size)
            t6 = pc()
            clf.classify(img, box)
            t7 = pc()
            crop.append(t6 - t5)
            cls.append(t7 - t6)

    def med(xs):
        return round(1000.0 * float(np.median(xs)), 3) if xs else None

    return {
        "frames": min(len(frames), limit),
        "detections_classified": len(cls),
        "preprocess_resize_ms": med(pre),
        "detector_invoke_ms": med(inv),
        "detector_run_ms": med(run),
        "decode_nms_ms": med(dec),
        "classifier_crop_ms": med(crop),
        "classifier_per_face_ms": med(cls),
        "note": "median of each step timed separately; detector_run = resize into the input buffer + invoke + "
                "reading outputs; classifier_per_face = crop + invoke + output",
    }


# ---------------------------------------------------------------------------------------------- #
# Child processes: peak RSS, CPU time


@dataclass
class Measured:
    returncode: int
    cpu_s: float
    maxrss_mb: float
    wall_s: float
    stdout: str
    stderr: str


#: Prepended to every measured child's code: on exit, the child reports the high-water mark of its own
#: memory (VmHWM).  ``ru_maxrss`` cannot be used for that on Linux: a forked child inherits the parent's
#: high-water mark, and exec keeps it, so every child of a big parent would report the parent's size.
_HWM_MARK = "maskgate-bench-vmhwm-kb"
_HWM = (
    "import atexit, sys\n"
    "def _maskgate_bench_hwm():\n"
    "    try:\n"
    "        for line in open('/proc/self/status'):\n"
    "            if line.startswith('VmHWM:'):\n"
    f"                sys.stderr.write('\\n{_HWM_MARK} ' + line.split()[1] + '\\n')\n"
    "    except OSError:\n"
    "        pass\n"
    "atexit.register(_maskgate_bench_hwm)\n"
)


def python_measured(code: str, args: list[str], *, timeout: float = 900.0) -> Measured:
    """Run ``python -c code args...`` and return its own CPU time and peak RSS.

    CPU time comes from ``os.wait4`` (this child only); peak RSS from the child's own VmHWM where
    /proc exists, else from ``ru_maxrss``.
    """
    cmd = [sys.executable, "-c", _HWM + code, *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    kb = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024
    found = re.findall(rf"^{_HWM_MARK} (\d+)$", stderr, re.M)
    if found:
        kb = int(found[-1])
        stderr = re.sub(rf"\n?{_HWM_MARK} \d+\n", "", stderr)
    return Measured(proc.returncode, usage.ru_utime + usage.ru_stime, kb / 1024.0, wall, stdout, stderr)


_CHILD = "from maskgate.bench import child_main; raise SystemExit(child_main(sys.argv[1]))"
_CLI = "from maskgate.cli import main; raise SystemExit(main(sys.argv[1:]))"


def child_main(spec_json: str) -> int:
    """In a fresh process: build one row and run it on a few frames (its peak RSS is read by the parent)."""
    spec = json.loads(spec_json)
    cv2.setNumThreads(spec["threads"])
    logging.basicConfig(level=logging.WARNING)
    row = None
    if spec["row"] != "baseline":
        row = build_row(spec["row"], bench_config(spec["config"], spec["threads"]), spec["threads"])
    n = 0
    for p in spec["frames"]:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if row is not None:
            row.process(img)
        n += 1
    print(json.dumps({"row": spec["row"], "frames": n}))
    return 0


def peak_rss(row: str, frames: list[Path], *, threads: int, configs: list[str]) -> dict:
    spec = {"row": row, "frames": [str(p) for p in frames], "threads": threads, "config": list(configs)}
    m = python_measured(_CHILD, [json.dumps(spec)])
    if m.returncode != 0:
        return {"error": f"child exited {m.returncode}: {_last_line(m.stderr)}"}
    return {"peak_rss_mb": round(m.maxrss_mb, 1), "frames": len(frames)}


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


# ---------------------------------------------------------------------------------------------- #
# The gate as a subprocess: idle CPU and peak RSS


def _toml_str(s: str) -> str:
    return json.dumps(str(s))  # a JSON string is a valid TOML basic string for paths and names


def gate_config(tmp: Path, threads: int) -> Path:
    """A config layered over the user's: events in ``tmp``, simulated pins, no notifications."""
    path = tmp / "bench.toml"
    path.write_text(
        f"[camera]\nfps = {CLIP_FPS}\n"
        f"[models]\nthreads = {threads}\n"
        f"[events]\ndatabase = {_toml_str(tmp / 'events.db')}\nsnapshots = false\n"
        "[gpio]\npin_factory = \"mock\"\n"
        "[mqtt]\nenabled = false\n[email]\nenabled = false\n[webhook]\nenabled = false\n"
    )
    return path


_STOPPED = re.compile(r"stopped after (\d+) frames \((\d+) analysed\)")


def _gate_run(configs: list[str], clip: Path, *extra: str) -> tuple[Measured, int, int]:
    args = ["-q", "run"]
    for c in configs:
        args += ["--config", str(c)]
    args += ["--source", str(clip), *extra]
    m = python_measured(_CLI, args)  # `maskgate run`, in a child that reports its peak RSS
    if m.returncode != 0:
        raise MaskgateError(f"`maskgate run` failed ({m.returncode}): {_last_line(m.stderr)}")
    found = _STOPPED.search(m.stderr)
    frames, analysed = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    return m, frames, analysed


def measure_gate_rss(configs: list[str], tmp: Path, frames: FrameSet) -> dict:
    """Peak RSS of ``maskgate run`` replaying a clip with one visitor (both models run)."""
    from maskgate.democlip import Segment, write_clip

    script = [Segment("empty", 1.0), Segment("visitor", 4.0, frames.names[0]), Segment("empty", 1.0)]
    clip = write_clip(tmp / "visit.avi", script, fps=CLIP_FPS, encounters=frames.folder)
    n = int(round(sum(s.seconds for s in script) * CLIP_FPS))
    m, seen, analysed = _gate_run(configs, clip, "--max-frames", str(n))
    return {"peak_rss_mb": round(m.maxrss_mb, 1), "frames": seen, "analysed": analysed,
            "clip": f"empty 1 s, visitor {frames.names[0]} 4 s, empty 1 s at {CLIP_FPS:g} fps, --max-frames {n}"}


def measure_idle(configs: list[str], tmp: Path, seconds: float) -> dict:
    """CPU time of the gate watching an empty doorway, per minute of (real-time) video."""
    from maskgate.democlip import Segment, write_clip

    clip = write_clip(tmp / "empty.avi", [Segment("empty", seconds)], fps=CLIP_FPS, encounters=tmp)
    start, _, _ = _gate_run(configs, clip, "--max-frames", "1")
    idle, frames, analysed = _gate_run(configs, clip, "--realtime")
    watched = (frames - 1) / CLIP_FPS
    cpu = max(idle.cpu_s - start.cpu_s, 0.0)
    pct = 100.0 * cpu / watched if watched > 0 else None
    decode_pct = _decode_cost(clip)
    return {
        "clip_seconds": round(frames / CLIP_FPS, 2), "fps": CLIP_FPS, "frames": frames, "analysed": analysed,
        "cpu_s_total": round(idle.cpu_s, 3), "cpu_s_startup_and_first_frame": round(start.cpu_s, 3),
        "wall_s": round(idle.wall_s, 2),
        "cpu_s_per_minute": round(60.0 * cpu / watched, 3) if watched > 0 else None,
        "cpu_percent_of_one_core": round(pct, 2) if pct is not None else None,
        "replay_decode_percent_of_one_core": decode_pct,
        "cpu_percent_without_replay_decode": round(pct - decode_pct, 2) if pct is not None and decode_pct else None,
        "peak_rss_mb": round(idle.maxrss_mb, 1),
        "method": "maskgate run --realtime on an empty-doorway clip (democlip); CPU = user+sys of that process "
                  "minus a run of the same clip with --max-frames 1 (start-up, first frame, shutdown), over "
                  "the seconds of the remaining frames. The replay decodes MJPG frames, which a Pi camera does "
                  "not need; that decode cost, measured separately, is also reported.",
    }


def _decode_cost(clip: Path) -> float | None:
    """CPU % of one core that decoding ``clip`` at ``CLIP_FPS`` costs (replays only; a camera needs none of it)."""
    cap = cv2.VideoCapture(str(clip))
    if not cap.isOpened():
        return None
    t0 = time.process_time()
    n = 0
    while cap.read()[0]:
        n += 1
    cpu = time.process_time() - t0
    cap.release()
    return round(100.0 * cpu / (n / CLIP_FPS), 2) if n else None


# ---------------------------------------------------------------------------------------------- #
# int8 vs float on the same frames


def gate_rates(outputs: list, frames: FrameSet, max_people: int) -> dict:
    from maskgate.edge.policy import frame_passes
    from maskgate.evaluation import FrameOutcome, rates

    outcomes = []
    for name, result in zip(frames.names, outputs):
        label, source = frames.labels[name]
        outcomes.append(FrameOutcome(name, label, source, frame_passes(result.faces, max_people)[0],
                                     len(result.faces), result.faces[0].p_mask if result.faces else None))
    return rates(outcomes)


def compare_int8_float(int8: dict, flt: dict, verdicts_agree: float | None) -> dict:
    def pts(r, key):
        v = r.get(key)
        return round(100.0 * v, 2) if v is not None else None

    out = {}
    for key in ("false_accept_rate", "false_reject_rate"):
        a, b = pts(int8, key), pts(flt, key)
        out[key.replace("_rate", "_points")] = {"int8": a, "float": b,
                                                 "int8_minus_float": round(a - b, 2) if a is not None and b is not None else None}
    diffs = [abs(v["int8_minus_float"]) for v in out.values() if v["int8_minus_float"] is not None]
    out["max_abs_difference_points"] = max(diffs) if diffs else None
    out["within_target"] = (max(diffs) <= EVAL_TARGET_POINTS) if diffs else None
    if verdicts_agree is not None:
        out["same_verdict_fraction"] = round(verdicts_agree, 4)
    return out


def recorded_eval(cfg) -> dict | None:
    """int8 vs float gate rates that ``maskgate convert`` recorded in the manifest (all encounters)."""
    from maskgate.edge.model_files import manifest_entry, model_paths

    try:
        entry = manifest_entry(model_paths(cfg)[1])
    except MaskgateError:
        return None
    g = entry.get("metrics", {}).get("gate_encounters")
    if not g or "int8" not in g or "float" not in g:
        return None
    try:
        a, b = g["int8"]["encounters"]["all"], g["float"]["encounters"]["all"]
    except (KeyError, TypeError):
        return None
    return compare_int8_float(a, b, None)


# ---------------------------------------------------------------------------------------------- #
# The run


@dataclass
class BenchOptions:
    frames_dir: Path
    threads: int = 1
    warmup: int = 5
    limit: int | None = None
    block: int = 10
    configs: list[str] = field(default_factory=list)
    idle_seconds: float = 60.0
    rss_frames: int = 10
    skip: frozenset = frozenset()


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        cpu = fields.get("model name") or fields.get("hardware") or cpu
    except OSError:
        pass
    board = None
    try:
        board = Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode(errors="replace")
    except OSError:
        pass
    info = {"machine": platform.machine(), "cpu": cpu, "cores": os.cpu_count(), "board": board,
            "maskgate": _source_revision(),
            "python": platform.python_version(), "opencv": cv2.__version__, "numpy": np.__version__,
            "system": f"{platform.system()} {platform.release()}"}
    try:
        from importlib.metadata import version

        info["ai_edge_litert"] = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - informative only
        pass
    return info


def _source_revision() -> str:
    """``maskgate <version>``, plus the git commit when run from a checkout (``+dirty`` with local changes)."""
    from maskgate import __version__

    text = f"maskgate {__version__}"
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if sha.returncode == 0 and sha.stdout.strip():
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            text += f" (git {sha.stdout.strip()}{'+dirty' if dirty else ''})"
    except (OSError, subprocess.SubprocessError):
        pass
    return text


def _model_files(analyzer) -> dict:
    import hashlib

    out = {}
    for role, model in (("detector", analyzer.detector.model), ("classifier", analyzer.classifier.model)):
        out[role] = {"file": model.path.name, "sha256": hashlib.sha256(model.path.read_bytes()).hexdigest()}
    return out


def run_bench(opts: BenchOptions, progress: Callable[[str], None] = lambda s: None) -> dict:
    threads = opts.threads
    frames = FrameSet.load(opts.frames_dir, opts.limit)
    cfg = bench_config(opts.configs, threads)
    first = frames.image(0)
    saved_threads = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    report: dict = {
        "threads": threads,
        "frames": len(frames),
        "frames_dir": str(frames.folder),
        "frame_size": [int(first.shape[1]), int(first.shape[0])],
        "warmup": opts.warmup,
        "block": opts.block,
        "machine": machine_info(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "pipelines": {},
    }
    try:
        rows: dict[str, Row] = {}
        for name in ROWS:
            if name in opts.skip:
                report["pipelines"][name] = {"title": ROWS[name], "skipped": "--skip"}
                continue
            try:
                progress(f"loading {name}" + (" (TensorFlow)" if name == "seeds" else ""))
                rows[name] = build_row(name, cfg, threads)
            except Skipped as exc:
                report["pipelines"][name] = {"title": ROWS[name], "skipped": str(exc)}
        times, outputs = time_rows(rows, frames, warmup=opts.warmup, block=opts.block, progress=progress)

        for name in ROWS:
            if name not in rows:
                continue
            row = rows[name]
            entry = {"title": ROWS[name], "detail": row.detail, **summarise(times[name]),
                     "model_bytes": row.model_bytes,
                     "detections_per_frame": round(float(np.mean([row.faces(o) for o in outputs[name]])), 3)}
            if "note" in row.info:
                entry["note"] = row.info["note"]
            if "analyzer" in row.info:
                entry["models"] = _model_files(row.info["analyzer"])
            report["pipelines"][name] = entry
        report["pipelines"] = {n: report["pipelines"][n] for n in ROWS if n in report["pipelines"]}
        _add_ratios(report)

        if "stages" not in opts.skip:
            progress("stage breakdown of ours")
            report["stages"] = stage_breakdown(rows["ours"].info["analyzer"], frames)

        if "eval" not in opts.skip:
            report["eval"] = _eval_section(cfg, frames, outputs)
    finally:
        cv2.setNumThreads(saved_threads)

    with tempfile.TemporaryDirectory(prefix="maskgate-bench-") as tmpdir:
        tmp = Path(tmpdir)
        gate_configs = [*opts.configs, str(gate_config(tmp, threads))]
        if "rss" not in opts.skip:
            sample = frames.paths[: max(1, opts.rss_frames)]
            report["baseline_rss_mb"] = peak_rss("baseline", sample, threads=threads, configs=opts.configs).get("peak_rss_mb")
            for name, entry in report["pipelines"].items():
                if "skipped" in entry:
                    continue
                progress(f"peak RSS of {name} (child process)")
                got = peak_rss(name, sample, threads=threads, configs=opts.configs)
                entry["peak_rss_mb"] = got.get("peak_rss_mb")
                if "error" in got:
                    entry["peak_rss_error"] = got["error"]
        report["gate"] = {}
        if "gate_rss" not in opts.skip:
            progress("peak RSS of maskgate run (subprocess)")
            report["gate"]["rss"] = measure_gate_rss(gate_configs, tmp, frames)
        if "idle" not in opts.skip and opts.idle_seconds > 0:
            progress(f"idle doorway: maskgate run --realtime on a {opts.idle_seconds:g} s empty clip")
            report["gate"]["idle"] = idle = measure_idle(gate_configs, tmp, opts.idle_seconds)
            st = report.get("stages")
            if st and idle["frames"] > 1 and st.get("detector_run_ms"):
                per = st["detector_run_ms"] + (st.get("decode_nms_ms") or 0.0)
                watched_ms = 1000.0 * (idle["frames"] - 1) / CLIP_FPS
                idle["detector_percent_estimate"] = round(100.0 * max(idle["analysed"] - 1, 0) * per / watched_ms, 2)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = _targets(report)
    report["method"] = METHOD
    return report


def _add_ratios(report: dict) -> None:
    p = report["pipelines"]
    ours = p.get("ours", {})
    report["ratios"] = {}
    for name, entry in p.items():
        if name == "ours" or "skipped" in entry or "median_ms" not in ours:
            continue
        entry["ratio_median_vs_ours"] = round(entry["median_ms"] / ours["median_ms"], 2)
        entry["ratio_p95_vs_ours"] = round(entry["p95_ms"] / ours["p95_ms"], 2)
        report["ratios"][f"{name}/ours"] = entry["ratio_median_vs_ours"]


def _eval_section(cfg, frames: FrameSet, outputs: dict) -> dict:
    out: dict = {}
    if not frames.labels:
        out["bench_frames"] = {"skipped": f"{frames.folder} has no labels.json"}
    elif any(n not in frames.labels for n in frames.names):
        out["bench_frames"] = {"skipped": f"{frames.folder}/labels.json does not label every image"}
    elif "ours" not in outputs or "float_tflite" not in outputs:
        out["bench_frames"] = {"skipped": "needs both the ours and float_tflite rows"}
    else:
        mp = cfg.policy.max_people
        a = gate_rates(outputs["ours"], frames, mp)
        b = gate_rates(outputs["float_tflite"], frames, mp)
        from maskgate.edge.policy import frame_passes

        same = np.mean([frame_passes(x.faces, mp)[0] == frame_passes(y.faces, mp)[0]
                        for x, y in zip(outputs["ours"], outputs["float_tflite"])])
        out["bench_frames"] = {"frames": len(frames), "all_frames_of_folder": frames.complete,
                               **compare_int8_float(a, b, float(same)),
                               "how": "maskgate.evaluation.rates on the verdicts of the timed frames (ours vs float_tflite)"}
        if "ours_300x300" in outputs:
            # does the doorway allow the smaller detector input?  The same frames through both sizes.
            big = gate_rates(outputs["ours_300x300"], frames, mp)
            out["detector_size"] = {"gate_size": _size_summary(a), "300x300": _size_summary(big)}
    rec = recorded_eval(cfg)
    out["manifest"] = rec if rec is not None else {"skipped": "no int8/float gate metrics in the classifier's manifest entry"}
    if rec is not None:
        out["manifest"]["how"] = "recorded by `maskgate convert` (metrics.gate_encounters of the classifier's manifest entry)"
    return out


def _size_summary(r: dict) -> dict:
    pts = (lambda v: round(100.0 * v, 2) if v is not None else None)
    return {"false_accept_points": pts(r["false_accept_rate"]), "false_reject_points": pts(r["false_reject_rate"]),
            "no_face_found": sum(x["no_face_found"] for x in r["by_label"].values()), "frames": r["frames"]}


def _targets(report: dict) -> dict:
    p = report["pipelines"]
    out = {}
    note = None if report["threads"] == 1 else "the targets are defined at 1 thread; this run used more"
    for name, want in TARGETS.items():
        entry = p.get(name, {})
        r = entry.get("ratio_median_vs_ours")
        out[f"{name}_over_ours"] = {"want_at_least": want, "got": r, "met": (r >= want) if r is not None else None}
    idle = report.get("gate", {}).get("idle", {}).get("cpu_percent_of_one_core")
    out["idle_cpu_percent"] = {"want_at_most": IDLE_TARGET_PERCENT, "got": idle,
                               "met": (idle <= IDLE_TARGET_PERCENT) if idle is not None else None}
    rss = [v.get("peak_rss_mb") for v in report.get("gate", {}).values() if isinstance(v, dict) and v.get("peak_rss_mb")]
    got = max(rss) if rss else None
    out["gate_peak_rss_mb"] = {"want_at_most": GATE_RSS_TARGET_MB, "got": got,
                               "met": (got <= GATE_RSS_TARGET_MB) if got is not None else None}
    # On every frame of the folder the bench's own verdicts are `maskgate eval`'s; on a --limit subset one
    # frame is several points, so the record of `maskgate convert` (all encounters) is used instead.
    ev = report.get("eval", {})
    bf = ev.get("bench_frames", {})
    diff = bf.get("max_abs_difference_points") if bf.get("all_frames_of_folder") else None
    if diff is None:
        diff = ev.get("manifest", {}).get("max_abs_difference_points")
    out["int8_vs_float_points"] = {"want_at_most": EVAL_TARGET_POINTS, "got": diff,
                                   "met": (diff <= EVAL_TARGET_POINTS) if diff is not None else None}
    if note:
        out["note"] = note
    return out


# ---------------------------------------------------------------------------------------------- #
# The table


def _fmt(v, spec: str = ".1f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def format_report(report: dict) -> str:
    m = report["machine"]
    w, h = report["frame_size"]
    lines = [
        f"maskgate bench: {report['frames']} frames of {w}x{h} from {report['frames_dir']}, "
        f"{report['threads']} thread{'s' if report['threads'] != 1 else ''}, warm-up {report['warmup']}, "
        f"rows interleaved in blocks of {report['block']} frames" if report.get("block") else "rows one after the other",
        f"machine: {m.get('board') or m['cpu']} ({m['cores']} cores, {m['machine']}); load average "
        f"{report['load_average_at_start'][0]:.2f} at start, {report.get('load_average_at_end', [0])[0]:.2f} at end",
        "",
        f"{'pipeline':<58} {'median ms':>9} {'p95 ms':>8} {'fps':>7} {'RSS MB':>7} {'model MB':>8} {'/ ours':>7}",
    ]
    for name, e in report["pipelines"].items():
        title = e.get("title", name)
        if "skipped" in e:
            lines.append(f"{title:<58} skipped: {e['skipped']}")
            continue
        ratio = "1.00" if name == "ours" else _fmt(e.get("ratio_median_vs_ours"), ".2f")
        lines.append(f"{title:<58} {e['median_ms']:>9.1f} {e['p95_ms']:>8.1f} {e['fps']:>7.1f} "
                     f"{_fmt(e.get('peak_rss_mb'), '.0f'):>7} {e['model_bytes'] / 1e6:>8.2f} {ratio:>7}")
    lines.append("ratios are other / ours of the median per-frame time, in this run; RSS: peak of a child process "
                 f"per row (baseline: python + numpy + OpenCV {_fmt(report.get('baseline_rss_mb'), '.0f')} MB)")
    st = report.get("stages")
    if st:
        lines += ["", f"ours, step by step (median ms over {st['frames']} frames, {st['detections_classified']} detections classified): "
                  f"resize {_fmt(st['preprocess_resize_ms'], '.2f')}, detector {_fmt(st['detector_invoke_ms'], '.2f')}, "
                  f"decode+NMS {_fmt(st['decode_nms_ms'], '.2f')}, crop {_fmt(st['classifier_crop_ms'], '.2f')}, "
                  f"classifier per face {_fmt(st['classifier_per_face_ms'], '.2f')}"]
    ev = report.get("eval")
    if ev:
        lines.append("")
        for part, label in (("bench_frames", "on these frames"), ("manifest", "recorded by maskgate convert")):
            x = ev.get(part, {})
            if "skipped" in x:
                lines.append(f"int8 vs float {label}: skipped ({x['skipped']})")
                continue
            fa, fr = x["false_accept_points"], x["false_reject_points"]
            lines.append(f"int8 vs float {label}: false accepts {_fmt(fa['int8'], '.2f')}% vs {_fmt(fa['float'], '.2f')}%, "
                         f"false rejects {_fmt(fr['int8'], '.2f')}% vs {_fmt(fr['float'], '.2f')}% "
                         f"(largest difference {_fmt(x['max_abs_difference_points'], '.2f')} points)")
        ds = ev.get("detector_size")
        if ds:
            a, b = ds["gate_size"], ds["300x300"]
            lines.append(f"detector size on these frames: gate size false rejects {_fmt(a['false_reject_points'], '.2f')}%, "
                         f"no face found in {a['no_face_found']}; 300x300 false rejects {_fmt(b['false_reject_points'], '.2f')}%, "
                         f"no face found in {b['no_face_found']} (false accepts {_fmt(a['false_accept_points'], '.2f')}% vs "
                         f"{_fmt(b['false_accept_points'], '.2f')}%)")
    g = report.get("gate", {})
    if g.get("rss"):
        lines += ["", f"maskgate run peak RSS: {g['rss']['peak_rss_mb']:.0f} MB ({g['rss']['frames']} frames of a doorway clip "
                  f"with a visitor, {g['rss']['analysed']} analysed)"]
    if g.get("idle"):
        i = g["idle"]
        lines.append(f"idle doorway: {_fmt(i['cpu_s_per_minute'], '.2f')} CPU s per minute = "
                     f"{_fmt(i['cpu_percent_of_one_core'], '.1f')}% of one core ({i['frames']} frames at {i['fps']:g} fps in "
                     f"real time, {i['analysed']} analysed), of which replay decoding "
                     f"{_fmt(i['replay_decode_percent_of_one_core'], '.1f')}% and detector runs "
                     f"~{_fmt(i.get('detector_percent_estimate'), '.1f')}%; peak RSS {i['peak_rss_mb']:.0f} MB")
    t = report.get("targets", {})
    if t:
        lines += ["", "targets:"]
        for key, x in t.items():
            if key == "note":
                continue
            bound = f">= {x['want_at_least']}" if "want_at_least" in x else f"<= {x['want_at_most']}"
            state = {True: "met", False: "MISSED", None: "not measured"}[x["met"]]
            lines.append(f"  {key:<24} {bound:<8} got {_fmt(x['got'], '.2f'):>7}  {state}")
        if "note" in t:
            lines.append(f"  ({t['note']})")
    return "\n".join(lines)
