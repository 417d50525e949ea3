"""Timing the rows side by side on the same frames, and where ours spends its time."""

from __future__ import annotations

import time
from typing import Callable

import cv2
import numpy as np

from maskgate.bench.common import FrameSet, Row


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
