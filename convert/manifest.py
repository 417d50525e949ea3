"""``models/manifest.json``: what each committed artifact is, how it was made, and what it measured.

For each artifact: sha256 and size, input and output tensors (shape, dtype, quantization), labels,
thresholds, the metrics measured at conversion (float vs int8), the static Edge TPU check, the tool
versions and the exact command that produced it.  The device reads labels, thresholds and the crop
geometry from here; the tests verify the committed files against it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

from maskgate.errors import ModelError

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for mod, name in (("tensorflow", "tensorflow"), ("keras", "keras"), ("numpy", "numpy"), ("cv2", "opencv"),
                      ("ai_edge_litert", "ai-edge-litert")):
        m = sys.modules.get(mod)
        if m is None:
            try:
                m = __import__(mod)
            except ImportError:
                continue
        v = getattr(m, "__version__", None)
        if v is None and mod == "ai_edge_litert":
            from importlib.metadata import version

            v = version("ai-edge-litert")
        versions[name] = str(v)
    return versions


def load(models_dir: Path) -> dict:
    path = Path(models_dir) / MANIFEST_NAME
    if not path.is_file():
        return {"version": MANIFEST_VERSION, "artifacts": {}}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    if data.get("version") != MANIFEST_VERSION:
        raise ModelError(f"{path}: manifest version {data.get('version')!r}, expected {MANIFEST_VERSION}")
    return data


def save(models_dir: Path, manifest: dict) -> Path:
    path = Path(models_dir) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def artifact_entry(path: Path, **fields) -> dict:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size, **fields}


def io_fields(check) -> dict:
    """The ``input`` and ``outputs`` entries of an artifact, from its Edge TPU check (raw BGR pixels in)."""
    keys = ("shape", "dtype", "scale", "zero_point")
    return {"input": {**{k: check.input[k] for k in keys}, "layout": "BGR, raw pixels 0..255"},
            "outputs": [{k: o[k] for k in keys} for o in check.outputs]}
