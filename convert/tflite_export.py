"""Keras → TFLite: full-integer int8 with real calibration data, or float for reference."""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from maskgate.models._tf import import_tensorflow


def to_tflite(model, representative: Callable[[], Iterable[np.ndarray]] | None = None) -> bytes:
    """Convert a Keras model.

    With ``representative`` (a callable returning an iterable of single input batches, float32 with
    raw pixel values 0..255), the result is full-integer: uint8 input (raw pixels: scale 1, zero
    point 0), int8 weights, activations and outputs, int32 biases, builtin int8 ops only.
    Without it, a float32 model (the reference the int8 one is measured against).
    """
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([np.asarray(x, np.float32)] for x in representative())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.int8
    return converter.convert()
