"""Tiny real models and datasets that tests build themselves.

The classifiers are real ONNX graphs run by real onnxruntime: they average each colour
channel of the image and pick the strongest one, so on the saturated-colour photos
made here the right answer is known (red=0, green=1, blue=2) and accuracy is exactly
predictable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "mlc-test-submission-v5.0"

COLOURS = {0: (230, 20, 20), 1: (20, 230, 20), 2: (20, 20, 230)}


def make_imagenet_folder(
    root: Path, count: int, *, size: tuple[int, int] = (80, 60), seed: int = 0,
    wrong_labels: int = 0, fmt: str = "JPEG",
) -> list[int]:
    """Colour photos + val_map.txt; the first ``wrong_labels`` lines get a wrong label.
    Returns the labels written."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "val").mkdir(exist_ok=True)
    lines, labels = [], []
    for i in range(count):
        colour = i % 3
        base = np.array(COLOURS[colour], dtype=np.int16)
        noise = rng.integers(-15, 16, size=(size[1], size[0], 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        suffix = "jpg" if fmt == "JPEG" else "png"
        name = f"val/img_{i:05d}.{suffix}"
        Image.fromarray(pixels).save(root / name, fmt)
        label = (colour + 1) % 3 if i < wrong_labels else colour
        labels.append(label)
        lines.append(f"{name} {label}")
    (root / "val_map.txt").write_text("\n".join(lines) + "\n")
    return labels


def _colour_classifier_nodes(
    onnx_helper, input_name: str, classes: int, first_class: int
) -> tuple[list, list]:
    """Nodes: GlobalAveragePool -> Flatten -> MatMul(3 x classes); channel c votes for
    class ``first_class + c``."""
    from onnx import numpy_helper

    weights = np.full((3, classes), -1.0, dtype=np.float32)
    for channel in range(3):
        weights[channel, first_class + channel] = 1.0
    init = [numpy_helper.from_array(weights, "w")]
    nodes = [
        onnx_helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
        onnx_helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        onnx_helper.make_node("MatMul", ["flat", "w"], ["scores"]),
    ]
    return nodes, init


def _save(graph, path: Path, opset: int = 13) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_logits_classifier(path: Path, *, input_name: str = "input",
                           output_name: str = "logits", classes: int = 1000,
                           batch: int | str = "N") -> Path:
    """Input (N,3,224,224) float32 → logits (N, classes); class c = strongest channel c."""
    from onnx import TensorProto, helper

    nodes, init = _colour_classifier_nodes(helper, input_name, classes, first_class=0)
    nodes.append(helper.make_node("Identity", ["scores"], [output_name]))
    graph = helper.make_graph(
        nodes, "colour_classifier",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 3, 224, 224])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, classes])],
        initializer=init,
    )
    return _save(graph, path)


def make_resnet50_shaped(path: Path) -> Path:
    """The MLPerf resnet50 ONNX interface: ``input_tensor:0`` (N,3,224,224) →
    ``ArgMax:0`` int64 (N,) over 1001 classes (0 = background) and
    ``softmax_tensor:0`` (N,1001). With the card's offset -1, channel c is class c."""
    from onnx import TensorProto, helper

    nodes, init = _colour_classifier_nodes(helper, "input_tensor:0", 1001, first_class=1)
    nodes += [
        helper.make_node("Softmax", ["scores"], ["softmax_tensor:0"], axis=1),
        helper.make_node("ArgMax", ["softmax_tensor:0"], ["ArgMax:0"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "resnet50_shaped",
        [helper.make_tensor_value_info("input_tensor:0", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [
            helper.make_tensor_value_info("ArgMax:0", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("softmax_tensor:0", TensorProto.FLOAT, ["N", 1001]),
        ],
        initializer=init,
    )
    return _save(graph, path)


def make_failing_classifier(path: Path, *, threshold: float = 0.5) -> Path:
    """Like make_logits_classifier, but inference raises inside onnxruntime for images
    whose mean blue is above ``threshold`` (after the demo card's normalisation): the
    graph gathers from a 1-element table at an index computed from the data, so those
    samples hit an out-of-bounds Gather. A real runtime error, not a mock."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, init = _colour_classifier_nodes(helper, "input", 1000, first_class=0)
    init += [
        numpy_helper.from_array(np.array([threshold], dtype=np.float32), "thr"),
        numpy_helper.from_array(np.zeros((1, 1000), dtype=np.float32), "table"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "blue_idx"),
    ]
    nodes += [
        # blue mean per sample: flat[:, 2]
        helper.make_node("Gather", ["flat", "blue_idx"], ["blue"], axis=1),
        helper.make_node("Greater", ["blue", "thr"], ["too_blue"]),
        helper.make_node("Cast", ["too_blue"], ["bad_index"], to=TensorProto.INT64),
        helper.make_node("ReduceMax", ["bad_index"], ["any_bad"], keepdims=0),
        # index 0 is fine, index 5 is out of the 1-row table's bounds
        helper.make_node("Mul", ["any_bad", "five"], ["row"]),
        helper.make_node("Unsqueeze", ["row", "axes0"], ["row1"]),
        helper.make_node("Gather", ["table", "row1"], ["zeros"], axis=0),
        helper.make_node("Add", ["scores", "zeros"], ["logits"]),
    ]
    init += [
        numpy_helper.from_array(np.array(5, dtype=np.int64), "five"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"),
    ]
    graph = helper.make_graph(
        nodes, "failing_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        initializer=init,
    )
    return _save(graph, path)
