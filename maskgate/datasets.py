"""Reading the data in ``../shared``: labelled frames, Pascal VOC photos, face folders.

Nothing here is copied into the repository; the project reads ``../shared`` where it lies.
The location is ``$MASKGATE_SHARED`` if set, else the ``shared`` folder beside the repository
(found from the current directory or from this source tree).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from maskgate.errors import DataError

#: Labels of faces in the data, and which of them the gate must let in.
FACE_LABELS = ("with_mask", "without_mask", "mask_weared_incorrect")
UNLOCK_LABELS = frozenset({"with_mask"})


def shared_dir(required: bool = True) -> Path | None:
    """The ``shared`` data folder."""
    env = os.environ.get("MASKGATE_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd().parent / "shared", Path(__file__).resolve().parents[2] / "shared"]
    for c in candidates:
        if (c / "data").is_dir():
            return c
    if required:
        tried = ", ".join(str(c) for c in candidates)
        raise DataError(f"the shared data folder was not found (tried {tried}); set MASKGATE_SHARED")
    return None


@dataclass(frozen=True)
class VocObject:
    label: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in image pixels

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class VocImage:
    path: Path
    width: int
    height: int
    objects: tuple[VocObject, ...]

    @property
    def scene(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class LabelledFrame:
    path: Path
    label: str
    source: str  # the scene the frame was made from


def dataset_kind(folder: str | Path) -> str:
    """``"voc"`` (images/ + annotations/), ``"frames"`` (*.jpg + labels.json) or ``"faces"`` (one folder per label)."""
    folder = Path(folder)
    if (folder / "images").is_dir() and (folder / "annotations").is_dir():
        return "voc"
    if (folder / "labels.json").is_file():
        return "frames"
    if any((folder / lab).is_dir() for lab in FACE_LABELS):
        return "faces"
    raise DataError(
        f"{folder}: not a dataset (expected images/ + annotations/, or *.jpg + labels.json, or with_mask/ + without_mask/)"
    )


def read_voc(folder: str | Path) -> list[VocImage]:
    folder = Path(folder)
    images = []
    ann_dir = folder / "annotations"
    for img_path in sorted((folder / "images").glob("*.jpg")):
        ann = ann_dir / f"{img_path.stem}.xml"
        if not ann.is_file():
            raise DataError(f"{img_path}: no annotation {ann}")
        try:
            root = ET.parse(ann).getroot()
            size = root.find("size")
            w, h = int(size.find("width").text), int(size.find("height").text)
            objects = []
            for obj in root.findall("object"):
                bb = obj.find("bndbox")
                box = tuple(int(float(bb.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax"))
                objects.append(VocObject(obj.find("name").text.strip(), box))
        except (ET.ParseError, AttributeError, ValueError) as exc:
            raise DataError(f"{ann}: not a Pascal VOC annotation ({exc})") from None
        images.append(VocImage(img_path, w, h, tuple(objects)))
    if not images:
        raise DataError(f"{folder}/images: no .jpg files")
    return images


def read_frames(folder: str | Path) -> list[LabelledFrame]:
    folder = Path(folder)
    try:
        labels = json.loads((folder / "labels.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{folder}/labels.json: {exc}") from None
    frames = []
    for name, info in sorted(labels.items()):
        label = info["label"] if isinstance(info, dict) else info
        source = info.get("source", "") if isinstance(info, dict) else ""
        if label not in FACE_LABELS and label != "no_face":
            raise DataError(f"{folder}/labels.json: {name} has unknown label {label!r}")
        path = folder / name
        if not path.is_file():
            raise DataError(f"{folder}/labels.json names {name}, which does not exist")
        frames.append(LabelledFrame(path, label, source))
    return frames


def read_faces(folder: str | Path) -> list[tuple[Path, str]]:
    """(image, label) of a folder with one sub-folder per label."""
    folder = Path(folder)
    out = []
    for label in FACE_LABELS:
        sub = folder / label
        if sub.is_dir():
            out += [(p, label) for p in sorted(sub.glob("*.jpg"))]
    if not out:
        raise DataError(f"{folder}: no labelled faces")
    return out
