"""The mask classifier: a small MobileNet-style CNN defined and trained here, from scratch.

Input: a 96x96 face crop, raw BGR pixels (0..255) — the scaling to [-1, 1] is the model's first
layer, so the int8 model takes the camera's bytes as they are.  Output: softmax over
``with_mask``, ``without_mask`` (which includes masks worn below the nose) and ``not_face``.
``p_mask`` is the first.

Depthwise-separable blocks with batch norm and ReLU6 keep it small (~0.2 M parameters, ~0.25 MB as
int8) and quantization-friendly; every op maps to the Edge TPU (CONV_2D, DEPTHWISE_CONV_2D, MEAN,
FULLY_CONNECTED, SOFTMAX).
"""

from __future__ import annotations

import functools

from maskgate.models._tf import import_keras, import_tensorflow

#: Moving averages of batch norm follow the weights quickly: with the default 0.99 they lag so far
#: behind in a short from-scratch training that inference-mode outputs collapse to one class.
BN_MOMENTUM = 0.9

#: (filters, stride) of the depthwise-separable blocks after the 3x3/2 stem.
BLOCKS = ((48, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1))


@functools.cache
def fused_batch_norm():
    """Keras' BatchNormalization, trained with TensorFlow's fused kernel (the layer class, made once).

    Keras 3 normalizes with separate moment, subtract and scale ops, and their gradients were 63 % of a
    training step of this network on the CPU (530 ms of a batch of 64 against 195 ms without batch
    norm).  The fused kernel computes the same in one op forward and one backward.  Inference, the
    saved weights and therefore the TFLite conversion are Keras' own: only the training branch
    differs, and it keeps Keras' moving averages (the fused kernel's batch variance is the unbiased
    one, which at 64 x 48 x 48 values per channel is the same to five digits).
    """
    keras = import_keras()
    tf = import_tensorflow()

    @keras.saving.register_keras_serializable(package="maskgate")
    class FusedBatchNorm(keras.layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            if not training or len(inputs.shape) != 4 or self.axis not in (-1, 3) or not (self.center and self.scale):
                return super().call(inputs, training=training, mask=mask)
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(inputs, self.gamma, self.beta, epsilon=self.epsilon,
                                                            data_format="NHWC", is_training=True)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + var * (1.0 - m))
            return y

    return FusedBatchNorm


def load_mask_classifier(path):
    """A trained classifier saved by ``maskgate train`` (its batch-norm layer class registered first)."""
    fused_batch_norm()
    return import_keras().models.load_model(path)


def build_mask_classifier(size: int = 96, n_classes: int = 3, *, stem: int = 24, dropout: float = 0.3, seed: int = 0):
    keras = import_keras()
    L = keras.layers
    BatchNorm = fused_batch_norm()
    init = keras.initializers.HeNormal(seed=seed)

    inp = keras.Input((size, size, 3), name="bgr")
    x = L.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inp)
    x = L.Conv2D(stem, 3, strides=2, padding="same", use_bias=False, kernel_initializer=init, name="stem")(x)
    x = BatchNorm(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    for i, (filters, stride) in enumerate(BLOCKS):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                              depthwise_initializer=init, name=f"b{i}_dw")(x)
        x = BatchNorm(momentum=BN_MOMENTUM, name=f"b{i}_dw_bn")(x)
        x = L.ReLU(6.0, name=f"b{i}_dw_relu")(x)
        x = L.Conv2D(filters, 1, use_bias=False, kernel_initializer=init, name=f"b{i}_pw")(x)
        x = BatchNorm(momentum=BN_MOMENTUM, name=f"b{i}_pw_bn")(x)
        x = L.ReLU(6.0, name=f"b{i}_pw_relu")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dropout(dropout, seed=seed, name="dropout")(x)
    out = L.Dense(n_classes, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                  name="classes")(x)
    return keras.Model(inp, out, name="mask_classifier")
