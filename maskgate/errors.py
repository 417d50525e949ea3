"""One exception root for the whole project.

Every error a user can cause or meet (bad config, missing model, camera gone, corrupt image, a
refused flash target) is a :class:`MaskgateError` subclass that is *also* the matching builtin, so
callers can catch either.  Messages name the offending thing; the CLI prints them as one line.
"""

from __future__ import annotations


class MaskgateError(Exception):
    """Root of every error maskgate raises on purpose."""


class ConfigError(MaskgateError, ValueError):
    """A configuration value is missing, unknown or out of range.  ``key`` is its dotted name."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config key '{key}': {message}")


class ModelError(MaskgateError, RuntimeError):
    """A model file is missing, corrupt, or does not have the expected interface."""


class RuntimeUnavailable(MaskgateError, ImportError):
    """No TFLite runtime (ai-edge-litert or tflite-runtime) can be imported."""


class DependencyMissing(MaskgateError, ImportError):
    """An optional extra (e.g. TensorFlow for train/convert) is not installed."""


class SourceError(MaskgateError, IOError):
    """A frame source cannot be opened or stopped delivering frames."""


class CameraStalled(SourceError):
    """A live camera delivered no frame within the stall timeout."""


class ImageError(MaskgateError, ValueError):
    """An image file cannot be read or is not a colour image."""


class DataError(MaskgateError, ValueError):
    """A dataset folder does not have the expected layout."""


class HardwareError(MaskgateError, RuntimeError):
    """GPIO pins or other hardware cannot be set up as configured."""


class DeployError(MaskgateError, RuntimeError):
    """Building or flashing an SD image failed."""


class UnsafeTarget(DeployError):
    """A flash target was refused: mounted, the system disk, or too small."""


class WebError(MaskgateError, OSError):
    """The installer's page cannot start: its port, its secret file or its certificate."""
