"""EfficientNet-Lite in Keras with the weights of the torch model: the demo model's
TensorFlow (and, converted from it, TFLite) form.

The torch library (efficientnet_lite_pytorch) pads its convolutions as TensorFlow's
``SAME`` does, so the Keras layers use ``padding="same"`` and the outputs agree to
float rounding; the builder checks that on a random batch before anything is cached.
The Keras model takes the card's NCHW input and transposes it to NHWC inside, so every
backend is fed the same preprocessed tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.errors import AssetError


def efficientnet_lite_to_keras(model: Any, input_chw: tuple[int, ...], *,
                               input_name: str = "input") -> Any:
    """The Keras twin of an ``efficientnet_lite_pytorch.EfficientNet`` (Lite variants:
    ReLU6, no squeeze-excitation) with its weights copied."""
    import keras
    from keras import layers

    def weights(tensor: Any) -> np.ndarray:
        return tensor.detach().cpu().numpy()

    def conv(x: Any, module: Any) -> Any:
        kernel = weights(module.weight)  # out, in/groups, kh, kw
        bias = [] if module.bias is None else [weights(module.bias)]
        stride = module.stride[0]
        if module.groups == 1:
            layer = layers.Conv2D(kernel.shape[0], kernel.shape[2], strides=stride,
                                  padding="same", use_bias=bool(bias))
            y = layer(x)
            layer.set_weights([kernel.transpose(2, 3, 1, 0), *bias])
        elif module.groups == kernel.shape[0] and kernel.shape[1] == 1:
            layer = layers.DepthwiseConv2D(kernel.shape[2], strides=stride, padding="same",
                                           use_bias=bool(bias))
            y = layer(x)
            layer.set_weights([kernel.transpose(2, 3, 0, 1), *bias])
        else:
            raise AssetError(f"grouped convolution with {module.groups} groups is not ported")
        return y

    def bn(x: Any, module: Any) -> Any:
        layer = layers.BatchNormalization(epsilon=module.eps)
        y = layer(x)
        layer.set_weights([weights(module.weight), weights(module.bias),
                           weights(module.running_mean), weights(module.running_var)])
        return y

    def relu6(x: Any) -> Any:
        return layers.ReLU(max_value=6.0)(x)

    if getattr(model._global_params, "local_pooling", False):
        raise AssetError("EfficientNet-Lite with local pooling is not ported")
    inputs = keras.Input(shape=input_chw, name=input_name)
    x = layers.Permute((2, 3, 1))(inputs)  # NCHW → NHWC
    x = relu6(bn(conv(x, model._conv_stem), model._bn0))
    for block in model._blocks:
        args = block._block_args
        if getattr(block, "has_se", False):
            raise AssetError("EfficientNet blocks with squeeze-excitation are not ported")
        block_input = x
        if args.expand_ratio != 1:
            x = relu6(bn(conv(x, block._expand_conv), block._bn0))
        x = relu6(bn(conv(x, block._depthwise_conv), block._bn1))
        x = bn(conv(x, block._project_conv), block._bn2)
        # the same test as the torch block (its stride is sometimes a list: no skip then)
        if block.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
            x = layers.Add()([x, block_input])
    x = relu6(bn(conv(x, model._conv_head), model._bn1))
    x = layers.GlobalAveragePooling2D()(x)
    dense = layers.Dense(model._fc.out_features)
    logits = dense(x)
    dense.set_weights([weights(model._fc.weight).T, weights(model._fc.bias)])
    return keras.Model(inputs, logits)


def save_serving(tf: Any, keras_model: Any, path: Path, input_name: str,
                 output_name: str) -> Any:
    """Save a SavedModel whose ``serving_default`` signature takes ``input_name`` and
    returns ``{output_name: ...}``; returns a numpy-in/numpy-out caller of the saved copy."""
    shape = [None, *keras_model.input_shape[1:]]

    class Serving(tf.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.model = keras_model

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name=input_name)])
        def serve(self, x: Any) -> dict[str, Any]:
            return {output_name: self.model(x, training=False)}

    module = Serving()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]

    def call(batch: np.ndarray) -> np.ndarray:
        return signature(**{input_name: tf.constant(batch)})[output_name].numpy()

    return call
