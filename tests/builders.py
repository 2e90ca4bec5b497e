"""Tiny real models and datasets that tests build themselves.

The classifiers are real ONNX graphs run by real onnxruntime: they average each colour
channel of the image and pick the strongest one, so on the saturated-colour photos
made here the right answer is known (red=0, green=1, blue=2) and accuracy is exactly
predictable.
"""

from __future__ import annotations

import json
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


def make_nan_classifier(path: Path, *, threshold: float = 0.5) -> Path:
    """Like make_logits_classifier, but every logit is NaN for images whose mean blue is
    above ``threshold`` (after the demo card's normalisation): a model that runs and
    answers NaN for some samples (``Where(too_blue, NaN, scores)``)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, init = _colour_classifier_nodes(helper, "input", 1000, first_class=0)
    init += [
        numpy_helper.from_array(np.array([threshold], dtype=np.float32), "thr"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "blue_idx"),
        numpy_helper.from_array(np.array(np.nan, dtype=np.float32), "nan"),
    ]
    nodes += [
        helper.make_node("Gather", ["flat", "blue_idx"], ["blue"], axis=1),  # (N, 1)
        helper.make_node("Greater", ["blue", "thr"], ["too_blue"]),
        helper.make_node("Where", ["too_blue", "nan", "scores"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "nan_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        initializer=init,
    )
    return _save(graph, path)


def make_class_id_classifier(path: Path, *, output_name: str = "logits",
                             classes: int = 1000) -> Path:
    """The colour classifier with the argmax inside the graph: input (N,3,224,224) →
    ``output_name`` int64 (N,), the class id (what a ``class-index`` card expects, not
    the scores an ``argmax`` card expects)."""
    from onnx import TensorProto, helper

    nodes, init = _colour_classifier_nodes(helper, "input", classes, first_class=0)
    nodes.append(helper.make_node("ArgMax", ["scores"], [output_name], axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes, "class_id_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info(output_name, TensorProto.INT64, ["N"])],
        initializer=init,
    )
    return _save(graph, path)


# --- detection -------------------------------------------------------------------------

COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
            24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47,
            48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70,
            72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]
BOX = 60  # every object is a BOX x BOX square: a 14-pixel shift gives IoU 0.6216


def make_coco_folder(
    root: Path, count: int = 6, *, annotations: str = "annotations/instances_val2017.json",
    image_dir: str = "val2017", category_ids: list[int] | None = None,
) -> list[dict]:
    """A COCO-format folder of synthetic JPEGs: a distinct plain background per image and
    one or two solid squares (the objects). Returns the ``images`` entries, each with its
    ``objects`` (category_id, bbox [x, y, w, h]) added."""
    category_ids = category_ids or COCO_IDS
    sizes = [(160, 120), (200, 150), (120, 160)]
    images, anns = [], []
    (root / image_dir).mkdir(parents=True, exist_ok=True)
    (root / annotations).parent.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        width, height = sizes[i % len(sizes)]
        pixels = np.empty((height, width, 3), np.uint8)
        pixels[:] = ((37 * i) % 200 + 20, (71 * i + 90) % 200 + 20, (113 * i + 40) % 200 + 20)
        boxes = [(8, 8)] + ([(width - BOX - 20, height - BOX - 8)] if i % 2 else [])
        objects = []
        for k, (x, y) in enumerate(boxes):
            pixels[y:y + BOX, x:x + BOX] = (255, 255, 255) if k == 0 else (0, 0, 0)
            category = category_ids[(3 * i + k) % len(category_ids)]
            objects.append({"category_id": category, "bbox": [x, y, BOX, BOX]})
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": category,
                         "bbox": [x, y, BOX, BOX], "area": BOX * BOX, "iscrowd": 0})
        name = f"{i + 1:012d}.jpg"
        Image.fromarray(pixels).save(root / image_dir / name, quality=95)
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height,
                       "objects": objects})
    listing = [{k: v for k, v in img.items() if k != "objects"} for img in images]
    categories = [{"id": c, "name": f"class-{c}", "supercategory": "thing"}
                  for c in category_ids]
    (root / annotations).write_text(json.dumps(
        {"images": listing, "annotations": anns, "categories": categories}))
    return images


def make_detection_oracle(path: Path, fmt, recipe, root: Path, images: list[dict], *,
                          image_dir: str = "val2017", shift_px: int = 0) -> Path:
    """An ONNX model that answers each image of ``images`` with its own ground-truth
    boxes (moved right by ``shift_px``), in the output convention of ``fmt``'s
    postprocess kind. It recognises an image by the per-channel mean of its preprocessed
    tensor (nearest stored key), so it must see the same preprocessing as the run."""
    from onnx import TensorProto, helper, numpy_helper

    from mlperf_pilot.datasets.preprocess import preprocess_image, resolve_library

    library = resolve_library(recipe)
    nchw = recipe.layout == "NCHW"
    tensors = [preprocess_image(root / image_dir / img["file_name"], recipe, library)
               for img in images]
    keys = np.stack([t.astype(np.float32).mean(axis=(1, 2) if nchw else (0, 1))
                     for t in tensors])
    tables = _oracle_tables(fmt.postprocess, recipe, images, shift_px)
    in_h, in_w = recipe.output_hw
    batch = fmt.inputs[0].shape[0]
    squeeze = fmt.postprocess.kind == "boxes-labels-scores" and batch == 1
    dtype = TensorProto.UINT8 if recipe.dtype == "uint8" else TensorProto.FLOAT
    shape = [batch if batch > 0 else "N", 3, in_h, in_w] if nchw else \
        [batch if batch > 0 else "N", in_h, in_w, 3]
    input_name = fmt.inputs[0].name
    init = [numpy_helper.from_array(keys, "keys")]
    nodes = [
        helper.make_node("Cast", [input_name], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["key"], axes=[2, 3] if nchw else [1, 2],
                         keepdims=0),
        helper.make_node("Unsqueeze", ["key", "one"], ["key3"]),
        helper.make_node("Sub", ["key3", "keys"], ["diff"]),
        helper.make_node("ReduceSumSquare", ["diff"], ["dist"], axes=[2], keepdims=0),
        helper.make_node("ArgMin", ["dist"], ["row"], axis=1, keepdims=0),
    ]
    init.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
    if squeeze:
        init.append(numpy_helper.from_array(np.array([0], np.int64), "zero"))
        nodes.append(helper.make_node("Squeeze", ["row", "zero"], ["pick"]))
    else:
        nodes.append(helper.make_node("Identity", ["row"], ["pick"]))
    outputs = []
    for name, table in zip(fmt.postprocess.outputs, tables, strict=True):
        init.append(numpy_helper.from_array(table, f"{name}_table"))
        nodes.append(helper.make_node("Gather", [f"{name}_table", "pick"], [name], axis=0))
        elem = TensorProto.INT64 if table.dtype == np.int64 else TensorProto.FLOAT
        dims = list(table.shape[1:]) if squeeze else ["N", *table.shape[1:]]
        outputs.append(helper.make_tensor_value_info(name, elem, dims))
    graph = helper.make_graph(
        nodes, "detection_oracle",
        [helper.make_tensor_value_info(input_name, dtype, shape)], outputs, initializer=init)
    return _save(graph, path)


def _oracle_tables(post, recipe, images: list[dict], shift_px: int) -> list[np.ndarray]:
    """Per image, the outputs a perfect model of this kind would give (padded rows
    score 0)."""
    slots = max(len(img["objects"]) for img in images)
    in_h, in_w = recipe.output_hw
    count = len(images)
    norm = np.zeros((count, slots, 4), np.float32)  # x1, y1, x2, y2 relative to the image
    cats = np.zeros((count, slots), np.int64)
    scores = np.zeros((count, slots), np.float32)
    for i, img in enumerate(images):
        for k, obj in enumerate(img["objects"]):
            x, y, w, h = obj["bbox"]
            x += shift_px
            norm[i, k] = (x / img["width"], y / img["height"], (x + w) / img["width"],
                          (y + h) / img["height"])
            cats[i, k] = obj["category_id"]
            scores[i, k] = 1.0 - 0.01 * k
    x1, y1, x2, y2 = (norm[..., j] for j in range(4))
    if post.kind == "tf-detection":
        nums = np.array([len(img["objects"]) for img in images], np.float32)
        return [nums, np.stack([y1, x1, y2, x2], -1), scores, cats.astype(np.float32)]
    if post.kind == "boxes-labels-scores":
        scale = np.array([1.0] * 4 if post.boxes_normalized else [in_w, in_h, in_w, in_h],
                         np.float32)
        if post.accuracy_inv_map:  # 1-based 80-class labels, mapped by the accuracy script
            cats = np.vectorize(lambda c: COCO_IDS.index(int(c)) + 1 if c else 0)(cats)
        return [(norm * scale).astype(np.float32), cats.astype(np.int64), scores]
    if post.kind == "boxes-scores":  # cx, cy, w, h relative to the input; 80-class scores
        boxes = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)
        one_hot = np.zeros((count, slots, 80), np.float32)
        for i in range(count):
            for k in range(len(images[i]["objects"])):
                one_hot[i, k, COCO_IDS.index(int(cats[i, k]))] = scores[i, k]
        return [boxes.astype(np.float32), one_hot]
    if post.kind == "yolo":  # (4 + 80, anchors): cx, cy, w, h in letterboxed input pixels
        from mlperf_pilot.decoders.base import letterbox_geometry

        head = np.zeros((count, 84, slots), np.float32)
        for i, img in enumerate(images):
            ratio, top, left = letterbox_geometry(img["height"], img["width"], recipe.resize)
            for k in range(len(img["objects"])):
                bx1, bx2 = x1[i, k] * img["width"], x2[i, k] * img["width"]
                by1, by2 = y1[i, k] * img["height"], y2[i, k] * img["height"]
                head[i, :4, k] = ((bx1 + bx2) / 2 * ratio + left, (by1 + by2) / 2 * ratio + top,
                                  (bx2 - bx1) * ratio, (by2 - by1) * ratio)
                head[i, 4 + COCO_IDS.index(int(cats[i, k])), k] = scores[i, k]
        return [head]
    raise ValueError(f"no oracle for postprocess kind {post.kind}")


def make_nan_detector(path: Path, fmt, recipe, *, anchors: int = 4) -> Path:
    """A detector in the ``boxes-scores`` convention of ``fmt`` (boxes (N, A, 4), scores
    (N, A, 80)) that answers NaN boxes with confident scores for every image: a model
    that runs but whose boxes are garbage."""
    from onnx import TensorProto, helper, numpy_helper

    if fmt.postprocess.kind != "boxes-scores":
        raise ValueError("make_nan_detector writes the boxes-scores convention")
    in_h, in_w = recipe.output_hw
    input_name = fmt.inputs[0].name
    init = [
        numpy_helper.from_array(np.full((1, anchors, 4), np.nan, np.float32), "nan_boxes"),
        numpy_helper.from_array(np.full((1, anchors, 80), 0.9, np.float32), "score_table"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"),
    ]
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),  # (N,) of 0
        helper.make_node("Unsqueeze", ["zeros", "axes12"], ["zeros3"]),  # (N, 1, 1)
        helper.make_node("Add", ["zeros3", "nan_boxes"], [fmt.postprocess.outputs[0]]),
        helper.make_node("Add", ["zeros3", "score_table"], [fmt.postprocess.outputs[1]]),
    ]
    init.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    graph = helper.make_graph(
        nodes, "nan_detector",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, in_h, in_w])],
        [helper.make_tensor_value_info(fmt.postprocess.outputs[0], TensorProto.FLOAT,
                                       ["N", anchors, 4]),
         helper.make_tensor_value_info(fmt.postprocess.outputs[1], TensorProto.FLOAT,
                                       ["N", anchors, 80])],
        initializer=init,
    )
    return _save(graph, path)


def make_slow_classifier(path: Path, *, channels: int = 64, kernel: int = 5) -> Path:
    """The demo's interface (``input`` (N,3,224,224) → ``logits`` (N,1000)) with real work
    in between: a ``channels`` x ``kernel``² convolution over the whole image (64 x 5x5:
    about 0.5 GFLOP per sample, milliseconds on any CPU), then a pool and a projection."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = rng.normal(0, 0.1, (channels, 3, kernel, kernel)).astype(np.float32)
    projection = rng.normal(0, 0.1, (channels, 1000)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["features"], pads=[kernel // 2] * 4),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "p"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "slow_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        initializer=[numpy_helper.from_array(weights, "w"),
                     numpy_helper.from_array(projection, "p")],
    )
    return _save(graph, path)
