"""Lazy, guarded imports of TensorFlow and Keras: the optional ``train`` extra.

Nothing in the device package imports this module; train, convert and the float references do,
and only when they run.
"""

from __future__ import annotations

import os

from maskgate.errors import DependencyMissing

_HINT = "install the training extra: pip install -e '.[train]'"


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise DependencyMissing(f"TensorFlow is needed for this command ({_HINT})") from exc
    return tf


def import_keras():
    import_tensorflow()
    import keras

    if keras.backend.backend() != "tensorflow":
        raise DependencyMissing(f"Keras must use the TensorFlow backend, not {keras.backend.backend()!r}")
    return keras
