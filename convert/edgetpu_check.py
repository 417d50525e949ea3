"""Static check of a ``.tflite`` file: is it full-integer, and can the Edge TPU map every op?

``edgetpu_compiler`` runs only on x86-64 Linux and is not available here, so this check reads the
flatbuffer itself and applies the Edge TPU's documented rules (Coral, "TensorFlow models on the
Edge TPU", supported operations):

* tensors: int8 or uint8 activations and weights, int32 biases only — no float tensor anywhere
  (a float tensor means the graph would run partly on the CPU);
* ops: the supported list below, with the constraints the compiler documents for them that a file
  can show (same dilation in x and y, no fused activation on pooling and concatenation, no padding
  or packing over the batch dimension).

It cannot know the compiler's op-version limits; those are only known by running the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from maskgate.errors import ModelError

#: TFLite builtin ops the Edge TPU supports (Coral documentation, compiler v16).
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN",
    "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6",
    "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE",
    "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM",
    "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})

_INT_TYPES_ACTIVATION = {"INT8", "UINT8"}


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError as exc:
            raise ModelError("reading a .tflite file needs ai-edge-litert or tensorflow") from exc
    return schema


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class CheckReport:
    path: str
    ops: dict[str, int] = field(default_factory=dict)  # op name -> count
    tensor_types: dict[str, int] = field(default_factory=dict)  # type name -> count
    problems: list[str] = field(default_factory=list)
    input: dict = field(default_factory=dict)  # shape, dtype, scale, zero_point
    outputs: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"ok": self.ok, "ops": self.ops, "tensor_types": self.tensor_types, "problems": self.problems,
                "input": self.input, "outputs": self.outputs}


def _tensor_desc(t, type_names) -> dict:
    q = t.Quantization()
    scale = [float(q.Scale(i)) for i in range(q.ScaleLength())] if q else []
    zp = [int(q.ZeroPoint(i)) for i in range(q.ZeroPointLength())] if q else []
    return {
        "name": t.Name().decode(),
        "shape": [int(t.Shape(i)) for i in range(t.ShapeLength())],
        "dtype": type_names[t.Type()].lower(),
        "scale": scale[0] if len(scale) == 1 else scale,
        "zero_point": zp[0] if len(zp) == 1 else zp,
    }


def check_tflite(path: str | Path) -> CheckReport:
    """Every problem that would keep ``path`` from being a full-int8, Edge-TPU-mappable model."""
    schema = _schema()
    path = Path(path)
    try:
        buf = path.read_bytes()
        model = schema.Model.GetRootAsModel(buf, 0)
        n_sub = model.SubgraphsLength()
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except Exception as exc:  # a corrupt flatbuffer raises anything from struct.error to IndexError
        raise ModelError(f"{path} is not a TFLite flatbuffer: {exc}") from None

    op_names = _names(schema.BuiltinOperator)
    type_names = _names(schema.TensorType)
    report = CheckReport(str(path))
    if n_sub != 1:
        report.problems.append(f"{n_sub} subgraphs (the Edge TPU compiler maps exactly one)")
    g = model.Subgraphs(0)

    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        tname = type_names.get(t.Type(), str(t.Type()))
        report.tensor_types[tname.lower()] = report.tensor_types.get(tname.lower(), 0) + 1

    bias_inputs: set[int] = set()
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(builtin, f"CUSTOM:{code.CustomCode()!r}")
        report.ops[name] = report.ops.get(name, 0) + 1
        where = f"op {i} {name}"
        if name not in EDGETPU_OPS:
            report.problems.append(f"{where}: not supported by the Edge TPU")
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV") and op.InputsLength() >= 3:
            bias_inputs.add(op.Inputs(op.InputsLength() - 1 if name != "TRANSPOSE_CONV" else 3))
        opts = op.BuiltinOptions()
        if opts is not None:
            if name == "CONV_2D":
                o = schema.Conv2DOptions()
                o.Init(opts.Bytes, opts.Pos)
                if o.DilationWFactor() != o.DilationHFactor():
                    report.problems.append(f"{where}: dilation {o.DilationWFactor()}x{o.DilationHFactor()} differs in x and y")
            elif name == "DEPTHWISE_CONV_2D":
                o = schema.DepthwiseConv2DOptions()
                o.Init(opts.Bytes, opts.Pos)
                if o.DilationWFactor() != o.DilationHFactor():
                    report.problems.append(f"{where}: dilation {o.DilationWFactor()}x{o.DilationHFactor()} differs in x and y")
            elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
                o = schema.Pool2DOptions()
                o.Init(opts.Bytes, opts.Pos)
                if o.FusedActivationFunction() != 0:
                    report.problems.append(f"{where}: fused activation on pooling")
            elif name == "CONCATENATION":
                o = schema.ConcatenationOptions()
                o.Init(opts.Bytes, opts.Pos)
                if o.FusedActivationFunction() != 0:
                    report.problems.append(f"{where}: fused activation on concatenation")
        if name == "PAD":
            pads = g.Tensors(op.Inputs(1))
            pad_buf = model.Buffers(pads.Buffer())
            data = pad_buf.DataAsNumpy() if pad_buf.DataLength() else None
            if data is not None:
                import numpy as np

                vals = np.frombuffer(data.tobytes(), dtype=np.int32)
                if vals.size >= 2 and (vals[0] or vals[1]):
                    report.problems.append(f"{where}: pads the batch dimension")

    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        tname = type_names.get(t.Type(), str(t.Type()))
        tensor_name = t.Name().decode()
        if len(tensor_name) > 60:
            tensor_name = tensor_name[:28] + "..." + tensor_name[-28:]
        label = f"tensor {i} '{tensor_name}' ({tname.lower()})"
        if i in bias_inputs:
            if tname != "INT32":
                report.problems.append(f"{label}: a bias must be int32")
        elif tname == "INT32":
            # int32 is also the type of shape/axis constants (e.g. RESHAPE's new shape); those are fine.
            if t.Quantization() is not None and t.Quantization().ScaleLength():
                report.problems.append(f"{label}: int32 activation (only biases may be int32)")
        elif tname not in _INT_TYPES_ACTIVATION:
            report.problems.append(f"{label}: not int8")

    report.input = _tensor_desc(g.Tensors(g.Inputs(0)), type_names)
    report.outputs = [_tensor_desc(g.Tensors(g.Outputs(j)), type_names) for j in range(g.OutputsLength())]
    return report


def main_check(paths: list[str]) -> int:
    """Print a check report per file; non-zero when any file has a problem."""
    bad = 0
    for p in paths:
        r = check_tflite(p)
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(r.ops.items()))
        print(f"{p}: {'OK' if r.ok else 'PROBLEMS'} — ops: {ops}; tensors: {r.tensor_types}")
        for prob in r.problems:
            print(f"  - {prob}")
        bad += not r.ok
    return 1 if bad else 0
