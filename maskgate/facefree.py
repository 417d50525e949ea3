"""Face-free doorway frames: what the gate sees when nobody is at the door, or only things.

Made from ``../shared``: regions of the wild photos that touch no annotated face (walls, signs,
bags, clothes, hands — whatever the photos hold), framed like the encounters (4:3, the region
about 40 % of the frame wide, grey padding), and drawn empty doorways under different light.  No
such frame may ever unlock the door.  Some wild photos have faces nobody annotated; a region is
kept only if it stays clear of every annotated face by half that face's size, which makes a hidden
face unlikely but not impossible.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from maskgate import datasets
from maskgate.democlip import empty_doorway
from maskgate.edge.ssd import iou_one_to_many
from maskgate.models.framing import doorway_frame


def _clear_of_faces(box: np.ndarray, faces: np.ndarray) -> bool:
    if not len(faces):
        return True
    w = faces[:, 2] - faces[:, 0]
    h = faces[:, 3] - faces[:, 1]
    grown = faces + np.stack([-w / 2, -h / 2, w / 2, h / 2], 1)
    return float(iou_one_to_many(box, grown).max()) == 0.0


def face_free_frames(shared: Path, *, per_photo: int = 1, seed: int = 0, scenes: set[str] | None = None,
                     drawn: int = 20):
    """Yield ``(name, frame)`` pairs: framed face-free regions of wild photos, then drawn empty doorways.

    ``scenes`` limits the photos used (e.g. validation scenes only).
    """
    rng = np.random.default_rng(seed)
    for item in datasets.read_voc(shared / "data" / "wild"):
        if scenes is not None and item.scene not in scenes:
            continue
        img = cv2.imread(str(item.path))
        h, w = img.shape[:2]
        faces = np.array([o.box for o in item.objects], np.float32).reshape(-1, 4)
        median = float(np.median(faces[:, 2] - faces[:, 0])) if len(faces) else w / 6
        got = 0
        for _ in range(per_photo * 30):
            if got >= per_photo:
                break
            side = float(np.clip(median * rng.uniform(0.8, 2.5), 24, min(w, h) * 0.9))
            x1, y1 = rng.uniform(0, w - side), rng.uniform(0, h - side)
            box = np.array([x1, y1, x1 + side, y1 + side], np.float32)
            if not _clear_of_faces(box, faces):
                continue
            frame, _ = doorway_frame(img, box, face_frac=0.4)
            got += 1
            yield f"{item.scene}_region{got}", frame
    base = empty_doorway()
    for i in range(drawn):
        light = 0.35 + 1.0 * i / max(drawn - 1, 1)  # from dusk to bright
        noise = rng.normal(0, 3, base.shape)
        frame = np.clip(base.astype(np.float32) * light + noise, 0, 255).astype(np.uint8)
        yield f"empty_doorway_{i:02d}", frame


def write_face_free(shared: Path, out: Path, **kwargs) -> int:
    """Write the frames as JPEGs plus a ``labels.json`` (label ``no_face``); returns how many."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    labels = {}
    for name, frame in face_free_frames(shared, **kwargs):
        cv2.imwrite(str(out / f"{name}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        labels[f"{name}.jpg"] = {"label": "no_face", "source": name.split("_region")[0]}
    (out / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True))
    return len(labels)
