"""How well a face detector serves the door: recall by class and distance, boxes, false detections.

Measured on doorway frames of the ``data/wild`` scenes held out of training (the validation
scenes: neither the classifier nor a fine-tuned detector has seen them), made with the encounters'
framing (:func:`maskgate.models.framing.doorway_frame`) with the face at four distances, and on the
face-free frames (objects, walls, empty doorways) of every scene:

* **recall** — the framed face is found when a detection at or above the threshold overlaps its
  annotation at IoU >= 0.5; given at the door's score (0.1), at 0.5, and as "at no threshold"
  (no such detection even at 0.05, the lowest score the gate's thresholds are chosen from);
* **boxes like cv2.dnn's** — of the faces cv2.dnn's res10 (300x300, score 0.5) finds at the door's
  size (80 px to 70 % of the 640x480 frame wide), the share where the face the gate would classify
  (its best detection at the door's score and size) overlaps cv2.dnn's box at IoU >= 0.5; also on
  the frames of ``data/encounters`` themselves, every such face in them;
* **false detections** — face-free frames with a detection the gate would take for a face at the door.

Detectors are callables ``detect(frame, threshold) -> (normalised boxes, scores)``: the device's
:meth:`FaceDetector.detect_normalized`, the float Keras port's, or cv2.dnn's reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from maskgate import datasets
from maskgate.edge.detector import to_frame_pixels
from maskgate.edge.ssd import iou_one_to_many

Detect = Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]

#: the framed face's width as a share of the 640 px frame: 96, 160, 256 (the encounters') and 384 px
DISTANCES = (0.15, 0.25, 0.4, 0.6)
DOOR_SCORE = 0.1
LOWEST_SCORE = 0.05
MATCH_IOU = 0.5
DOOR_SIZED = 80  # px of face width in the 640x480 frame
#: cv2.dnn's res10 gives a face that fills much of the frame a second, "ghost" box above 0.5, shifted
#: down and right past the frame's edges (159 of its boxes above 0.5 on the encounters); only boxes at
#: least this share inside the frame are faces the gate is judged against
MIN_REFERENCE_INSIDE = 0.9
MIN_FACE = 28  # px in the photo, the encounters' rule


@dataclass
class EvalFrame:
    image: np.ndarray
    box: np.ndarray | None  # the framed face, normalised to the frame; None: no annotation (an encounter)
    label: str
    face_frac: float


def held_out_frames(shared: Path, *, distances=DISTANCES, limit: int | None = None) -> list[EvalFrame]:
    """A doorway frame per annotated face (>= 28 px) of every validation scene, at each distance."""
    from maskgate.models.classifier_data import in_validation
    from maskgate.models.framing import FRAME_SIZE, doorway_frame, map_box

    fw, fh = FRAME_SIZE
    out = []
    for item in datasets.read_voc(shared / "data" / "wild"):
        if not in_validation(f"wild:{item.scene}"):
            continue
        img = None
        for obj in item.objects:
            if min(obj.width, obj.height) < MIN_FACE:
                continue
            img = cv2.imread(str(item.path)) if img is None else img
            for frac in distances:
                frame, m = doorway_frame(img, obj.box, face_frac=frac)
                out.append(EvalFrame(frame, map_box(m, obj.box) / np.float32([fw, fh, fw, fh]), obj.label, frac))
                if limit is not None and len(out) >= limit:
                    return out
    return out


def encounter_frames(shared: Path, *, limit: int | None = None) -> list[EvalFrame]:
    """The frames of ``data/encounters`` (the gate's own test frames), unannotated: for :func:`boxes_like_reference`."""
    out = []
    for f in datasets.read_frames(shared / "data" / "encounters"):
        img = cv2.imread(str(f.path))
        if img is not None:
            out.append(EvalFrame(img, None, f.label, float("nan")))
        if limit is not None and len(out) >= limit:
            break
    return out


def best_match_scores(detect: Detect, frames: list[EvalFrame]) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Per frame, the best score of a detection on the framed face (0 if none); and every detection."""
    scores = np.zeros(len(frames), np.float32)
    dets = []
    for i, f in enumerate(frames):
        boxes, s = detect(f.image, LOWEST_SCORE)
        dets.append((boxes, s))
        if len(boxes):
            hit = iou_one_to_many(f.box, boxes) >= MATCH_IOU
            if hit.any():
                scores[i] = s[hit].max()
    return scores, dets


def recall_table(frames: list[EvalFrame], scores: np.ndarray) -> dict:
    """Recall by class and by distance at the door's score, at 0.5, and faces found at no threshold."""
    def row(sel):
        n = int(sel.sum())
        s = scores[sel]
        return {"faces": n, "recall_door": _share(s >= DOOR_SCORE, n), "recall_0.5": _share(s >= 0.5, n),
                "none_at_any_threshold": _share(s < LOWEST_SCORE, n)}

    labels = np.array([f.label for f in frames])
    fracs = np.array([f.face_frac for f in frames])
    table = {"all": row(np.ones(len(frames), bool))}
    for label in sorted(set(labels)):
        table[label] = row(labels == label)
    for frac in sorted(set(fracs)):
        table[f"with_mask, face {int(round(frac * 640))} px"] = row((labels == "with_mask") & (fracs == frac))
    return table


def boxes_like_reference(frames: list[EvalFrame], dets, ref_dets, *, min_face: int = 80,
                         max_face_fraction: float = 0.7) -> dict:
    """Of the door-sized faces cv2.dnn finds (>= 0.5, on the framed face), the share the gate boxes like it.

    The gate's box is its best-scored detection on that person (IoU >= 0.1 with cv2.dnn's box) at the
    door's size (at least ``min_face`` and at most ``max_face_fraction`` of the frame wide:
    ``detection.min_face``, ``detection.max_face_fraction``) and at least the door's score; it matches
    when its IoU with cv2.dnn's box is at least 0.5.  A frame without an annotated face (``box`` None,
    :func:`encounter_frames`) has every door-sized face cv2.dnn finds in it judged.  cv2.dnn's boxes
    that lie partly outside the frame (less than :data:`MIN_REFERENCE_INSIDE` inside) are not judged.
    """
    ious = []
    for f, (boxes, s), (rb, rs) in zip(frames, dets, ref_dets):
        h, w = f.image.shape[:2]
        rb = rb[rs >= 0.5]
        rb = rb[_inside_share(rb) >= MIN_REFERENCE_INSIDE]
        if not len(rb):
            continue
        if f.box is None:
            judged = range(len(rb))
        else:
            on_face = iou_one_to_many(f.box, rb)
            judged = [int(on_face.argmax())] if on_face.max() >= 0.3 else []
        px, ps = to_frame_pixels(boxes[s >= DOOR_SCORE], s[s >= DOOR_SCORE], w, h)
        widths = px[:, 2] - px[:, 0]
        for j in judged:
            if not DOOR_SIZED <= (rb[j, 2] - rb[j, 0]) * w <= max_face_fraction * w:  # not a face the gate would judge
                continue
            fits = (widths >= min_face) & (widths <= max_face_fraction * w)
            if len(px):  # on this person: other faces in the frame are judged on their own
                fits &= iou_one_to_many(rb[j] * np.float32([w, h, w, h]), px) >= 0.1
            if not fits.any():
                ious.append(0.0)
                continue
            door = px[fits][int(np.argmax(ps[fits]))] / np.float32([w, h, w, h])
            ious.append(float(iou_one_to_many(rb[j], door[None])[0]))
    total = len(ious)
    return {"faces": total, "boxed_iou_0.5": _share(np.array(ious) >= MATCH_IOU, total) if total else None,
            "median_iou": round(float(np.median(ious)), 3) if ious else None}


def false_detections(detect: Detect, shared: Path, *, min_face: int = 80, max_face_fraction: float = 0.7,
                     limit: int | None = None) -> dict:
    """Face-free frames with a detection the gate would take for a face at the door, at several thresholds.

    The gate's rule (``detection.min_face``, ``detection.max_face_fraction``): at least 80 px and at most
    70 % of the frame wide, once clipped to the frame.
    """
    from maskgate.facefree import face_free_frames

    best = []
    for n, (_, img) in enumerate(face_free_frames(shared)):
        if limit is not None and n >= limit:
            break
        h, w = img.shape[:2]
        boxes, s = to_frame_pixels(*detect(img, LOWEST_SCORE), w, h)  # clipped, as the gate sees them
        widths = boxes[:, 2] - boxes[:, 0]
        big = (widths >= min_face) & (widths <= max_face_fraction * w)
        best.append(float(s[big].max()) if big.any() else 0.0)
    best = np.array(best)
    return {"frames": len(best), **{f"with_face_at_{t}": int((best >= t).sum()) for t in (0.05, DOOR_SCORE, 0.3, 0.5)}}


def _inside_share(boxes: np.ndarray) -> np.ndarray:
    """The share of each normalised box's area that lies inside the frame."""
    def area(b):
        return np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    return area(np.clip(boxes, 0.0, 1.0)) / np.maximum(area(boxes), 1e-9)


def _share(mask: np.ndarray, n: int) -> float | None:
    return round(float(np.sum(mask)) / n, 4) if n else None


def compare_detectors(shared: Path, detectors: dict[str, Detect], *, reference: Detect,
                      limit: int | None = None) -> dict:
    """Every figure of this module for each detector, on the same frames, with cv2.dnn's as the reference."""
    frames = held_out_frames(shared, limit=limit)
    encounters = encounter_frames(shared, limit=limit)
    _, ref_dets = best_match_scores(reference, frames)
    ref_on_encounters = [reference(f.image, LOWEST_SCORE) for f in encounters]
    out = {"frames": len(frames), "scenes": "validation scenes of data/wild", "encounters": len(encounters),
           "encounters_cv2_dnn_boxes_past_the_edge": sum(
               int(np.sum(_inside_share(b[s >= 0.5]) < MIN_REFERENCE_INSIDE)) for b, s in ref_on_encounters),
           "detectors": {}}
    for name, detect in {"cv2.dnn 300x300": reference, **detectors}.items():
        scores, dets = best_match_scores(detect, frames)
        out["detectors"][name] = {
            "recall": recall_table(frames, scores),
            "boxes_like_cv2_dnn": boxes_like_reference(frames, dets, ref_dets),
            "boxes_like_cv2_dnn_encounters": boxes_like_reference(
                encounters, [detect(f.image, LOWEST_SCORE) for f in encounters], ref_on_encounters),
            "face_free": false_detections(detect, shared, limit=limit),
        }
    return out


def format_comparison(result: dict) -> str:
    names = list(result["detectors"])
    rows = list(next(iter(result["detectors"].values()))["recall"])
    lines = [f"{result['frames']} doorway frames of the {result['scenes']}; recall at score {DOOR_SCORE} / 0.5 / "
             f"not found at any threshold (>= {LOWEST_SCORE})", ""]
    lines.append("| | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for r in rows:
        cells = []
        for n in names:
            x = result["detectors"][n]["recall"][r]
            cells.append(f"{100 * x['recall_door']:.1f} / {100 * x['recall_0.5']:.1f} / {100 * x['none_at_any_threshold']:.1f} %"
                         if x["faces"] else "–")
        faces = result["detectors"][names[0]]["recall"][r]["faces"]
        lines.append(f"| {r} ({faces}) | " + " | ".join(cells) + " |")
    for key, label in (("boxes_like_cv2_dnn", "door-sized faces boxed like cv2.dnn at IoU >= 0.5"),
                       ("boxes_like_cv2_dnn_encounters", f"the same, on the {result['encounters']} encounters "
                        f"({result['detectors'][names[0]]['boxes_like_cv2_dnn_encounters']['faces']} faces; "
                        f"{result['encounters_cv2_dnn_boxes_past_the_edge']} cv2.dnn boxes past the frame's edge "
                        "left out)")):
        cells = []
        for n in names:
            b = result["detectors"][n][key]
            cells.append(f"{100 * b['boxed_iou_0.5']:.1f} % (median IoU {b['median_iou']})" if b["faces"] else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for key in ("with_face_at_0.05", f"with_face_at_{DOOR_SCORE}", "with_face_at_0.5"):
        cells = [str(result["detectors"][n]["face_free"][key]) for n in names]
        frames = result["detectors"][names[0]]["face_free"]["frames"]
        lines.append(f"| face-free frames with a face at the door at {key.rsplit('_', 1)[1]} (of {frames}) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)
