"""One tiny network, built in torch and written in every backend's format.

conv 1x1 (3 → 3, near identity) → ReLU → global average → linear (3 → 1000, channel c
votes for class c): on the colour photos of ``builders.make_imagenet_folder`` it gets
every label right, so accuracy is identical across backends, and its logits are the
reference the backends' outputs are compared with.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

SIZE = 224


def tiny_weights() -> dict[str, np.ndarray]:
    conv = np.eye(3, dtype=np.float32) + 0.1 * np.array(
        [[0, 1, -1], [-1, 0, 1], [1, -1, 0]], np.float32)
    fc = np.full((1000, 3), -1.0, np.float32)
    fc[np.arange(3), np.arange(3)] = 1.0
    fc[3:] = np.random.default_rng(1).uniform(-1.5, -1.0, (997, 3)).astype(np.float32)
    return {"conv_w": conv, "conv_b": np.array([0.05, -0.05, 0.0], np.float32),
            "fc_w": fc, "fc_b": np.linspace(-0.1, 0.1, 1000, dtype=np.float32)}


def reference_logits(batch: np.ndarray) -> np.ndarray:
    """The network in numpy, NCHW input."""
    w = tiny_weights()
    conv = np.einsum("oc,nchw->nohw", w["conv_w"], batch) + w["conv_b"][None, :, None, None]
    pooled = np.maximum(conv, 0).mean(axis=(2, 3))
    return pooled @ w["fc_w"].T + w["fc_b"]


def torch_module():
    import torch

    w = tiny_weights()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(3, 1000))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(w["conv_w"][:, :, None, None]))
        net[0].bias.copy_(torch.from_numpy(w["conv_b"]))
        net[4].weight.copy_(torch.from_numpy(w["fc_w"]))
        net[4].bias.copy_(torch.from_numpy(w["fc_b"]))
    return net.eval()


def write_onnx(path: Path) -> Path:
    import torch

    torch.onnx.export(torch_module(), torch.zeros(1, 3, SIZE, SIZE), str(path), dynamo=False,
                      opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def write_torchscript(path: Path) -> Path:
    import torch

    torch.jit.trace(torch_module(), torch.zeros(1, 3, SIZE, SIZE)).save(str(path))
    return path


def write_pickled(path: Path) -> Path:
    import torch

    torch.save(torch_module(), str(path))
    return path


def keras_model():
    import keras
    from keras import layers

    w = tiny_weights()
    inputs = keras.Input((3, SIZE, SIZE), name="input")
    x = layers.Permute((2, 3, 1))(inputs)
    conv = layers.Conv2D(3, 1)
    x = layers.ReLU()(conv(x))
    dense = layers.Dense(1000)
    out = dense(layers.GlobalAveragePooling2D()(x))
    conv.set_weights([w["conv_w"].T[None, None], w["conv_b"]])
    dense.set_weights([w["fc_w"].T, w["fc_b"]])
    return keras.Model(inputs, out)


def write_savedmodel(path: Path) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from mlperf_pilot.assets.keras_port import save_serving

    save_serving(tf, keras_model(), path, "input", "logits")
    return path


def write_frozen_graph(path: Path, *, nhwc_input: bool = False) -> Path:
    """A TF1-style frozen graph with tensors ``input:0`` and ``logits:0``; with
    ``nhwc_input`` the placeholder is NHWC (what OpenCV's importer expects)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    w = tiny_weights()
    graph = tf.Graph()
    with graph.as_default():
        shape = [None, SIZE, SIZE, 3] if nhwc_input else [None, 3, SIZE, SIZE]
        x = tf.compat.v1.placeholder(tf.float32, shape, name="input")
        nhwc = x if nhwc_input else tf.transpose(x, [0, 2, 3, 1])
        kernel = tf.constant(w["conv_w"].T[None, None])
        conv = tf.nn.bias_add(tf.nn.conv2d(nhwc, kernel, 1, "VALID"), tf.constant(w["conv_b"]))
        pooled = tf.reduce_mean(tf.nn.relu(conv), axis=[1, 2])
        logits = tf.nn.bias_add(tf.matmul(pooled, tf.constant(w["fc_w"].T)),
                                tf.constant(w["fc_b"]))
        tf.identity(logits, name="logits")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def _caffe_messages():
    """Just enough of caffe.proto (field numbers as in Caffe) to write a .caffemodel."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="tiny_caffe.proto", package="tinycaffe")
    f = descriptor_pb2.FieldDescriptorProto
    rep, opt = f.LABEL_REPEATED, f.LABEL_OPTIONAL

    def message(name: str, fields: list[tuple[str, int, int, int, str | None]]) -> None:
        msg = fdp.message_type.add(name=name)
        for fname, number, label, ftype, type_name in fields:
            field = msg.field.add(name=fname, number=number, label=label, type=ftype)
            if type_name:
                field.type_name = f".tinycaffe.{type_name}"

    message("BlobShape", [("dim", 1, rep, f.TYPE_INT64, None)])
    message("BlobProto", [("data", 5, rep, f.TYPE_FLOAT, None),
                          ("shape", 7, opt, f.TYPE_MESSAGE, "BlobShape")])
    message("LayerParameter", [("name", 1, opt, f.TYPE_STRING, None),
                               ("type", 2, opt, f.TYPE_STRING, None),
                               ("blobs", 7, rep, f.TYPE_MESSAGE, "BlobProto")])
    message("NetParameter", [("name", 1, opt, f.TYPE_STRING, None),
                             ("layer", 100, rep, f.TYPE_MESSAGE, "LayerParameter")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tinycaffe.NetParameter"))


CAFFE_PROTOTXT = f"""name: "tiny"
input: "data"
input_shape {{ dim: 1 dim: 3 dim: {SIZE} dim: {SIZE} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param {{ num_output: 3 kernel_size: 1 }} }}
layer {{ name: "relu" type: "ReLU" bottom: "conv" top: "conv" }}
layer {{ name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param {{ pool: AVE global_pooling: true }} }}
layer {{ name: "logits" type: "InnerProduct" bottom: "pool" top: "logits"
        inner_product_param {{ num_output: 1000 }} }}
"""


def write_caffe(path: Path) -> Path:
    """``path`` (.prototxt) and its .caffemodel beside it."""
    w = tiny_weights()
    net = _caffe_messages()(name="tiny")
    for name, blobs in (("conv", [w["conv_w"][:, :, None, None], w["conv_b"]]),
                        ("logits", [w["fc_w"], w["fc_b"]])):
        layer = net.layer.add(name=name)
        for blob in blobs:
            proto = layer.blobs.add()
            proto.shape.dim.extend(blob.shape)
            proto.data.extend(blob.reshape(-1).tolist())
    path.write_text(CAFFE_PROTOTXT)
    path.with_suffix(".caffemodel").write_bytes(net.SerializeToString())
    return path


DARKNET_CFG = f"""[net]
batch=1
width={SIZE}
height={SIZE}
channels=3

[convolutional]
filters=3
size=1
stride=1
pad=0
activation=relu

[avgpool]

[connected]
output=1000
activation=linear
"""


def write_darknet(path: Path) -> Path:
    """``path`` (.cfg) and its .weights beside it (darknet 0.2 layout: header, then per
    layer biases and weights)."""
    w = tiny_weights()
    header = struct.pack("<iiiq", 0, 2, 0, 0)
    body = np.concatenate([w["conv_b"], w["conv_w"].reshape(-1), w["fc_b"],
                           w["fc_w"].reshape(-1)]).astype("<f4").tobytes()
    path.write_text(DARKNET_CFG)
    path.with_suffix(".weights").write_bytes(header + body)
    return path
