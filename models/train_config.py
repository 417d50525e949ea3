"""Where training writes its outputs (kept out of git; `maskgate convert` reads the Keras model from here)."""

from __future__ import annotations

from pathlib import Path

#: build/ at the repository root when running from a source tree, else the current directory.
_ROOT = Path(__file__).resolve().parents[1]


def build_dir() -> Path:
    root = _ROOT if (_ROOT / "pyproject.toml").is_file() else Path.cwd()
    return root / "build"


def default_keras_path() -> Path:
    return build_dir() / "classifier" / "mask_classifier.keras"


def crops_dir() -> Path:
    """The cached crop sets (one per detector and data code), shared by every training run and conversion."""
    return build_dir() / "crops"
