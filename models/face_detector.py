"""Keras port of OpenCV's ResNet-10 SSD face detector (``res10_300x300_ssd``, TensorFlow export).

The network is rebuilt layer by layer from ``opencv_face_detector_uint8.pb`` and its weights are
read from the same file.  The file stores its weights as ``quint8`` constants behind TensorFlow
``Dequantize`` ops (mode ``MIN_FIRST``); they are dequantized with that op's arithmetic (see
:func:`dequantize_min_first`), which is also how cv2.dnn reads them.

Differences from the graph, all exact rewrites:

* the input is raw BGR pixels (0..255): OpenCV's mean subtraction (104, 177, 123), ``data_bn`` and
  ``data_scale`` are one per-channel affine layer (``input_affine``, a 1x1 depthwise convolution);
* every ``*_scale`` (Caffe ``Scale``: multiply, add) is folded into the layer it follows (a batch
  norm, or a convolution whose batch norm the export had already folded into a bias);
* ``SpaceToBatchND``/``BatchToSpaceND`` pairs are what they stand for: explicit zero padding, and a
  3x3 convolution with dilation 2;
* outputs are ``loc`` ``(1, N, 4)`` and ``conf`` ``(1, N, 2)`` (softmax), the graph's ``mbox_loc`` and
  ``mbox_conf_softmax``; PriorBox and DetectionOutput are :mod:`maskgate.edge.ssd`.

The network is fully convolutional, so any input size works; priors follow the size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskgate.errors import ModelError
from maskgate.models._tf import import_keras, import_tensorflow

#: OpenCV's res10 mean, BGR order, as passed to ``cv2.dnn.blobFromImage``.
RES10_MEAN_BGR = (104.0, 177.0, 123.0)
#: ``epsilon`` of every FusedBatchNorm of the graph.
BN_EPSILON = 1.0009999641624745e-05


def dequantize_min_first(q: np.ndarray, range_min: float, range_max: float) -> np.ndarray:
    """TensorFlow's ``Dequantize`` in ``MIN_FIRST`` mode for ``quint8``, in float64 numpy.

    Same arithmetic as TF's ``QuantizedToFloat``: ``scale = (max - min) / 255`` and the minimum rounded
    to a whole number of (float32) steps.  Done here rather than with TF's kernel because that kernel
    returns NaN for the graph's all-zero constants, stored with the range ``[0, FLT_MIN]`` (the
    float32 step underflows); OpenCV reads those as zeros, and so does this function.
    """
    q = np.asarray(q).view(np.uint8).astype(np.float64)
    if range_max == range_min:
        return np.full(q.shape, range_min)
    scale = (range_max - range_min) / 255.0
    step32 = float(np.float32(scale))
    min_rounded = np.round(range_min / step32) * step32 if step32 > 0 else range_min
    return min_rounded + q * scale


def read_graph_weights(pb_path: str | Path) -> dict[str, np.ndarray]:
    """Every float constant of the frozen graph, by node name, as float32 numpy arrays.

    ``quint8`` constants behind ``Dequantize`` nodes are dequantized with :func:`dequantize_min_first`,
    which reproduces cv2.dnn's reading of the graph (raw outputs agree to ~1e-4).
    """
    tf = import_tensorflow()
    pb_path = Path(pb_path)
    if not pb_path.is_file():
        raise ModelError(f"face detector graph not found: {pb_path}")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(pb_path.read_bytes())
    except Exception as exc:  # protobuf raises DecodeError; anything else is equally fatal here
        raise ModelError(f"{pb_path} is not a TensorFlow GraphDef: {exc}") from exc
    consts = {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in graph_def.node if n.op == "Const"}
    weights: dict[str, np.ndarray] = {}
    for node in graph_def.node:
        if node.op == "Dequantize":
            mode = node.attr["mode"].s.decode()
            if mode != "MIN_FIRST":
                raise ModelError(f"{pb_path}: unsupported Dequantize mode {mode!r} at {node.name}")
            q, lo, hi = (consts[name] for name in node.input)
            weights[node.name] = dequantize_min_first(q, float(lo), float(hi)).astype(np.float32)
        elif node.op == "Const" and consts[node.name].dtype == np.float32:
            weights[node.name] = consts[node.name]
    if "conv1_h/weights" not in weights:
        raise ModelError(f"{pb_path} is not OpenCV's res10 face detector (no conv1_h/weights)")
    return weights


def _l2_normalization_layer():
    keras = import_keras()

    class L2Normalization(keras.layers.Layer):
        """conv4_3_norm: L2-normalise each pixel across channels, then multiply by a learned scale.

        Written as ``x * rsqrt(max(sum(x^2), eps))``, the graph's own form, which the TFLite
        converter turns into one L2_NORMALIZATION op.
        """

        def __init__(self, channels: int, epsilon: float, **kwargs):
            super().__init__(**kwargs)
            self.channels = channels
            self.epsilon = epsilon
            self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")

        def call(self, x):
            tf = import_tensorflow()
            return tf.math.l2_normalize(x, axis=-1, epsilon=self.epsilon) * self.scale

        def get_config(self):
            return {**super().get_config(), "channels": self.channels, "epsilon": self.epsilon}

    return L2Normalization


class _Builder:
    """Builds the functional model and remembers which weights go into which layer."""

    def __init__(self, w: dict[str, np.ndarray]):
        self.keras = import_keras()
        self.w = w
        self.assign: list[tuple[str, list[np.ndarray]]] = []

    def _scale(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.w[f"{name}/mul"].astype(np.float64), self.w[f"{name}/add"].astype(np.float64)

    def conv(self, x, name: str, *, stride=1, padding="same", dilation=1, bias: str | None = "bias", scale=None):
        """A graph Conv2D; ``bias`` names the bias constant (``bias`` or ``Conv2D_bn_offset``), or None;
        ``scale`` names a following Caffe Scale layer to fold into kernel and bias."""
        kernel = self.w[f"{name}/weights"].astype(np.float64)
        b = None
        if bias == "bias":
            b = self.w[f"{name}/bias"].astype(np.float64)
        elif bias:
            b = self.w[f"{name}/{bias}"].astype(np.float64)
        if scale:
            m, a = self._scale(scale)
            kernel = kernel * m
            b = (b if b is not None else 0.0) * m + a
        layer = self.keras.layers.Conv2D(
            kernel.shape[-1], kernel.shape[:2], strides=stride, padding=padding,
            dilation_rate=dilation, use_bias=b is not None, name=name.replace("/", "_"),
        )
        y = layer(x)
        self.assign.append((layer.name, [kernel.astype(np.float32)] + ([b.astype(np.float32)] if b is not None else [])))
        return y

    def bn_scale(self, x, bn: str, scale: str):
        """FusedBatchNorm followed by a Caffe Scale, as one BatchNormalization layer."""
        gamma, beta = self.w[f"{bn}/gamma"].astype(np.float64), self.w[f"{bn}/beta"].astype(np.float64)
        m, a = self._scale(scale)
        layer = self.keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=bn)
        y = layer(x)
        self.assign.append((layer.name, [
            (gamma * m).astype(np.float32), (beta * m + a).astype(np.float32),
            self.w[f"{bn}/mean"], self.w[f"{bn}/std"],  # the graph's "std" is the variance input
        ]))
        return y

    def relu(self, x, name: str):
        return self.keras.layers.ReLU(name=name)(x)


def build_res10(width: int = 300, height: int = 300, weights: dict[str, np.ndarray] | None = None,
                *, pb_path: str | Path | None = None, batch_size: int | None = 1):
    """The res10 SSD as a Keras model for a ``width`` x ``height`` BGR uint8-valued float input.

    Pass the graph's ``weights`` (see :func:`read_graph_weights`) or its ``pb_path``.  The batch is 1
    for conversion (the device runs one frame at a time); ``batch_size=None`` builds it for training.
    """
    if weights is None:
        if pb_path is None:
            raise ValueError("build_res10 needs weights or pb_path")
        weights = read_graph_weights(pb_path)
    keras = import_keras()
    L = keras.layers
    b = _Builder(weights)
    w = weights

    inp = keras.Input((height, width, 3), batch_size=batch_size, name="bgr")

    # OpenCV's blobFromImage mean, data_bn and data_scale: one per-channel affine on raw pixels.
    g = w["data_bn/gamma"].astype(np.float64) / np.sqrt(w["data_bn/std"].astype(np.float64) + BN_EPSILON)
    m, a = b._scale("data_scale")
    mul = g * m
    add = ((-np.asarray(RES10_MEAN_BGR) - w["data_bn/mean"]) * g + w["data_bn/beta"]) * m + a
    affine = L.DepthwiseConv2D(1, use_bias=True, name="input_affine")
    x = affine(inp)
    b.assign.append((affine.name, [mul.reshape(1, 1, 3, 1).astype(np.float32), add.astype(np.float32)]))

    x = L.ZeroPadding2D(3, name="pad")(x)
    x = b.conv(x, "conv1_h", stride=2, padding="valid")
    x = b.relu(b.bn_scale(x, "conv1_bn_h", "conv1_scale_h"), "relu")
    pool = L.MaxPooling2D(3, 2, padding="same", name="conv1_pool")(x)

    # layer_64_1: pre-activation residual block, identity shortcut
    y = b.relu(b.conv(pool, "layer_64_1_conv1_h", bias="Conv2D_bn_offset", scale="layer_64_1_scale2_h"), "relu_1")
    y = b.conv(y, "layer_64_1_conv2_h", bias=None)
    x = L.Add(name="add")([y, pool])

    # layer_128_1
    r = b.relu(b.bn_scale(x, "layer_128_1_bn1_h", "layer_128_1_scale1_h"), "relu_2")
    e = b.conv(r, "layer_128_1_conv_expand_h", stride=2, bias=None)
    y = b.relu(b.conv(r, "layer_128_1_conv1_h", stride=2, bias="Conv2D_bn_offset", scale="layer_128_1_scale2"), "relu_3")
    y = b.conv(y, "layer_128_1_conv2", bias=None)
    x = L.Add(name="add_1")([y, e])

    # layer_256_1; its pre-activation also feeds the conv4_3 head
    r4 = b.relu(b.bn_scale(x, "layer_256_1_bn1", "layer_256_1_scale1"), "relu_4")
    e = b.conv(r4, "layer_256_1_conv_expand", stride=2, bias=None)
    y = L.ZeroPadding2D(1, name="pad_1")(r4)
    y = b.relu(b.conv(y, "layer_256_1_conv1", stride=2, padding="valid", bias="Conv2D_bn_offset", scale="layer_256_1_scale2"), "relu_5")
    y = b.conv(y, "layer_256_1_conv2", bias=None)
    x = L.Add(name="add_2")([y, e])

    norm_layer = _l2_normalization_layer()(
        r4.shape[-1], float(w["conv4_3_norm/l2_normalize/Maximum/y"]), name="conv4_3_norm")
    conv4_3 = norm_layer(r4)
    b.assign.append((norm_layer.name, [w["conv4_3_norm/mul"].reshape(-1)]))

    # layer_512_1 (stride 1, dilated second convolution)
    r = b.relu(b.bn_scale(x, "layer_512_1_bn1", "layer_512_1_scale1"), "relu_6")
    e = b.conv(r, "layer_512_1_conv_expand_h", bias=None)
    y = b.relu(b.conv(r, "layer_512_1_conv1_h", bias="Conv2D_bn_offset", scale="layer_512_1_scale2_h"), "relu_7")
    y = b.conv(y, "layer_512_1_conv2_h", dilation=2, bias=None)
    x = L.Add(name="add_3")([y, e])
    fc7 = b.relu(b.bn_scale(x, "last_bn_h", "last_scale_h"), "last_relu")

    # extra SSD feature layers
    x = b.relu(b.conv(fc7, "conv6_1_h"), "conv6_1_relu")
    conv6_2 = b.relu(b.conv(x, "conv6_2_h", stride=2), "conv6_2_relu")
    x = b.relu(b.conv(conv6_2, "conv7_1_h"), "conv7_1_relu")
    x = L.ZeroPadding2D(1, name="pad_2")(x)
    conv7_2 = b.relu(b.conv(x, "conv7_2_h", stride=2, padding="valid"), "conv7_2_relu")
    x = b.relu(b.conv(conv7_2, "conv8_1_h"), "conv8_1_relu")
    conv8_2 = b.relu(b.conv(x, "conv8_2_h"), "conv8_2_relu")
    x = b.relu(b.conv(conv8_2, "conv9_1_h"), "conv9_1_relu")
    conv9_2 = b.relu(b.conv(x, "conv9_2_h"), "conv9_2_relu")

    heads = [("conv4_3_norm", conv4_3), ("fc7", fc7), ("conv6_2", conv6_2),
             ("conv7_2", conv7_2), ("conv8_2", conv8_2), ("conv9_2", conv9_2)]
    locs, confs = [], []
    for name, feat in heads:
        locs.append(L.Reshape((-1, 4), name=f"{name}_loc_flat")(b.conv(feat, f"{name}_mbox_loc")))
        confs.append(L.Reshape((-1, 2), name=f"{name}_conf_flat")(b.conv(feat, f"{name}_mbox_conf")))
    loc = L.Concatenate(axis=1, name="loc")(locs)
    conf = L.Softmax(axis=-1, name="conf")(L.Concatenate(axis=1, name="mbox_conf")(confs))
    model = keras.Model(inp, [loc, conf], name=f"res10_ssd_{width}x{height}")

    for name, values in b.assign:
        model.get_layer(name).set_weights(values)
    return model


class KerasFaceDetector:
    """The float Keras port with the device's decoding: the reference the TFLite models are measured against.

    Same ``detect_normalized`` as :class:`maskgate.edge.detector.FaceDetector`.
    """

    def __init__(self, model, *, score_threshold: float = 0.5, nms_threshold: float = 0.45):
        from maskgate.edge.ssd import SSDDecoder

        _, self.height, self.width, _ = model.input_shape
        self.model = model
        self.decoder = SSDDecoder(self.width, self.height, nms_threshold=nms_threshold)
        self.score_threshold = score_threshold

    def detect_normalized(self, frame: np.ndarray, score_threshold: float | None = None):
        import cv2

        x = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_LINEAR)[None].astype(np.float32)
        loc, conf = self.model(x, training=False)
        thr = self.score_threshold if score_threshold is None else score_threshold
        return self.decoder.decode(np.asarray(loc)[0], np.asarray(conf)[0, :, 1], thr)
