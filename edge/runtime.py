"""TFLite interpreters: ai-edge-litert first, tflite-runtime as fallback, Coral Edge TPU when present.

:func:`load_model` is the only place an interpreter is created.  It checks the file, picks the
runtime, tries the Edge TPU delegate when a ``*_edgetpu.tflite`` sits beside the model, and falls
back to the CPU model with one log line when the delegate cannot be loaded.  The returned
:class:`TFLiteModel` exposes the input tensor as a numpy view, so the caller can write a frame
straight into the interpreter's own buffer, and reads quantization parameters once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskgate.errors import ModelError, RuntimeUnavailable

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = "libedgetpu.so.1"


def _import_runtime():
    """(Interpreter, load_delegate, name) from the first runtime that imports."""
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate, "tflite-runtime"
    except ImportError:
        pass
    raise RuntimeUnavailable(
        "no TFLite runtime: install ai-edge-litert (pip install ai-edge-litert) or, on boards without "
        "it, tflite-runtime with numpy<2"
    )


@dataclass(frozen=True)
class Quant:
    """Affine quantization of one tensor: ``real = (q - zero_point) * scale``; ``scale == 0`` means float."""

    scale: float
    zero_point: int

    @property
    def is_quantized(self) -> bool:
        return self.scale != 0.0


class TFLiteModel:
    """One interpreter, created once, with its tensors described.

    ``outputs`` maps the last dimension of each output (4: box deltas, 2: class scores, ...) or its
    name to the output index, since converters do not keep output order stable.
    """

    def __init__(self, interpreter, path: Path, runtime: str, delegate: str | None):
        self.interpreter = interpreter
        self.path = path
        self.runtime = runtime
        self.delegate = delegate
        inp = interpreter.get_input_details()
        if len(inp) != 1:
            raise ModelError(f"{path}: expected one input tensor, found {len(inp)}")
        self.input_index = inp[0]["index"]
        self.input_shape = tuple(int(d) for d in inp[0]["shape"])
        self.input_dtype = np.dtype(inp[0]["dtype"])
        self.input_quant = Quant(*inp[0]["quantization"])
        self.output_details = interpreter.get_output_details()
        self._input_view = interpreter.tensor(self.input_index)

    def input_buffer(self) -> np.ndarray:
        """The interpreter's own input memory as a numpy array (batch dimension removed).

        Write into it, drop the reference, then :meth:`invoke`; TFLite refuses to run while a view is held.
        """
        return self._input_view()[0]

    def invoke(self) -> None:
        self.interpreter.invoke()

    def output(self, index: int) -> np.ndarray:
        """Output ``index`` (position in ``output_details``), batch dimension removed; a copy."""
        return self.interpreter.get_tensor(self.output_details[index]["index"])[0]

    def output_quant(self, index: int) -> Quant:
        return Quant(*self.output_details[index]["quantization"])

    def __repr__(self) -> str:
        where = f" on {self.delegate}" if self.delegate else ""
        return f"<TFLiteModel {self.path.name} {self.input_shape} {self.input_dtype}{where} ({self.runtime})>"


def edgetpu_variant(path: Path) -> Path:
    """``model.tflite`` → ``model_edgetpu.tflite`` (edgetpu_compiler's naming)."""
    return path.with_name(f"{path.stem}_edgetpu{path.suffix}")


def load_model(path: str | Path, *, threads: int = 2, edgetpu: str = "auto") -> TFLiteModel:
    """Create the interpreter for ``path``.

    ``edgetpu``: ``"auto"`` uses ``<stem>_edgetpu.tflite`` with the Edge TPU delegate when both are
    available and otherwise the CPU model; ``"off"`` never probes; ``"require"`` raises
    :class:`ModelError` when the Edge TPU cannot be used.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    Interpreter, load_delegate, runtime = _import_runtime()

    if edgetpu != "off":
        tpu_path = edgetpu_variant(path)
        reason = None
        if not tpu_path.is_file():
            reason = f"no {tpu_path.name} beside the model"
        else:
            try:
                delegate = load_delegate(EDGETPU_LIBRARY)
                interpreter = Interpreter(model_path=str(tpu_path), experimental_delegates=[delegate])
                interpreter.allocate_tensors()
                log.info("%s: running on the Edge TPU", tpu_path.name)
                return TFLiteModel(interpreter, tpu_path, runtime, "edgetpu")
            except (ValueError, OSError, RuntimeError) as exc:
                reason = f"Edge TPU unavailable ({exc})"
        if edgetpu == "require":
            raise ModelError(f"{path.name}: models.edgetpu = 'require' but {reason}")
        if tpu_path.is_file():  # worth one line: the user shipped an Edge TPU model that is not used
            log.warning("%s: %s; using the CPU model", path.name, reason)

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a usable TFLite model: {exc}") from None
    return TFLiteModel(interpreter, path, runtime, None)
