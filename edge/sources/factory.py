"""``camera.source`` / ``--source`` → a frame source."""

from __future__ import annotations

from pathlib import Path

from maskgate.edge.config import CameraConfig
from maskgate.edge.sources.base import FrameSource
from maskgate.edge.sources.live import OpenCVCaptureSource, Picamera2Source
from maskgate.edge.sources.replay import IMAGE_SUFFIXES, ImageListSource, VideoFileSource
from maskgate.errors import SourceError


def describe_source(spec: str) -> str:
    """What kind of source ``spec`` names: picamera2, demo, usb, stream, folder, image or video."""
    if spec in ("picamera2", "demo", "auto"):
        return spec
    if spec.isdigit():
        return "usb"
    if "://" in spec:
        return "stream"
    p = Path(spec)
    if p.is_dir():
        return "folder"
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    return "video"


def open_source(spec: str, cfg: CameraConfig, *, keep_main: bool = False) -> FrameSource:
    """Build (not yet open) the source ``spec`` names; ``auto`` is the Pi camera on a Pi, else the demo clip.

    ``keep_main``: keep the Pi camera's full-size picture of each frame (for snapshots).
    """
    from maskgate.edge.actuators import on_raspberry_pi

    kind = describe_source(spec)
    if kind == "auto":
        kind = "picamera2" if on_raspberry_pi() else "demo"
    if kind == "picamera2":
        return Picamera2Source(width=cfg.width, height=cfg.height, lores_width=cfg.lores_width,
                               lores_height=cfg.lores_height, fps=cfg.fps, keep_main=keep_main)
    if kind == "demo":
        from maskgate.democlip import demo_clip_path

        return VideoFileSource(demo_clip_path(), cfg.fps)
    if kind == "usb":
        return OpenCVCaptureSource(int(spec), width=cfg.width, height=cfg.height, fps=cfg.fps)
    if kind == "stream":
        return OpenCVCaptureSource(spec, width=cfg.width, height=cfg.height, fps=cfg.fps)
    if kind == "folder":
        return ImageListSource.folder(spec, cfg.fps)
    if kind == "image":
        return ImageListSource([Path(spec)], cfg.fps, spec)
    if not Path(spec).exists():
        raise SourceError(f"camera.source {spec!r}: no such file, folder or camera")
    return VideoFileSource(spec, cfg.fps)
