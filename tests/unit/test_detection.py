"""Detection: decoders into MLPerf's groups of 7, COCO-format loading, pycocotools mAP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builders import BOX, COCO_IDS, make_coco_folder
from mlperf_pilot.accuracy import GroundTruth, compute_accuracy
from mlperf_pilot.accuracy.coco import coco_map
from mlperf_pilot.catalog.cards import PostprocessSpec, ResizeSpec
from mlperf_pilot.datasets.coco import load_coco
from mlperf_pilot.decoders import create_decoder
from mlperf_pilot.decoders.base import Geometry, letterbox_geometry
from mlperf_pilot.decoders.detection import COCO80_TO_91, batched_nms
from mlperf_pilot.errors import AccuracyError, DatasetError


def _groups(batch, i: int) -> np.ndarray:
    return np.frombuffer(batch.sample_bytes(i), np.float32).reshape(-1, 7)


# --- decoders ------------------------------------------------------------------------


def test_tf_detection_keeps_num_detections_and_writes_qsl_idx() -> None:
    spec = PostprocessSpec(kind="tf-detection", outputs=("n", "b", "s", "c"))
    decoder = create_decoder(spec)
    num = np.array([2, 0], np.float32)
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.4, 0.4], [0, 0, 1, 1]]] * 2,
                     np.float32)
    scores = np.array([[0.9, 0.8, 0.7]] * 2, np.float32)
    classes = np.array([[18, 1, 3]] * 2, np.float32)
    batch = decoder.decode([num, boxes, scores, classes], np.array([7, 8]))
    first = _groups(batch, 0)
    assert first.shape == (2, 7)
    np.testing.assert_allclose(first[0], [7, 0.1, 0.2, 0.5, 0.6, 0.9, 18], rtol=1e-6)
    assert batch.sizes[1] == 0  # no detections: an empty response


def test_boxes_labels_scores_stops_at_threshold_and_normalises_pixels() -> None:
    spec = PostprocessSpec(kind="boxes-labels-scores", outputs=("boxes", "labels", "scores"),
                           box_order="xyxy", boxes_normalized=False, score_threshold=0.05)
    decoder = create_decoder(spec, Geometry(input_hw=(800, 800)))
    boxes = np.array([[80, 160, 400, 800], [0, 0, 8, 8], [0, 0, 800, 800]], np.float32)
    labels = np.array([5, 6, 7], np.int64)
    scores = np.array([0.9, 0.04, 0.5], np.float32)  # sorted as the model gives them
    batch = decoder.decode([boxes, labels, scores], np.array([3]))  # no batch axis
    rows = _groups(batch, 0)
    assert rows.shape == (1, 7)  # the 0.5 after the 0.04 is cut, as in the reference
    np.testing.assert_allclose(rows[0], [3, 0.2, 0.1, 1.0, 0.5, 0.9, 5], rtol=1e-6)


def test_scored_boxes_nms_is_per_class_and_maps_coco80() -> None:
    spec = PostprocessSpec(kind="boxes-scores", outputs=("boxes", "scores"),
                           box_order="cxcywh", class_map="coco80", score_threshold=0.1,
                           nms_iou_threshold=0.45, max_detections=10)
    decoder = create_decoder(spec, Geometry(input_hw=(100, 100)))
    boxes = np.array([[[0.5, 0.5, 0.4, 0.4], [0.51, 0.5, 0.4, 0.4], [0.5, 0.5, 0.4, 0.4],
                       [0.1, 0.1, 0.1, 0.1]]], np.float32)
    scores = np.zeros((1, 4, 80), np.float32)
    scores[0, 0, 0] = 0.9  # person
    scores[0, 1, 0] = 0.8  # the same person again: suppressed
    scores[0, 2, 79] = 0.7  # a toothbrush on the same spot: another class, kept
    scores[0, 3, 16] = 0.05  # below the threshold
    rows = _groups(decoder.decode([boxes, scores], np.array([0])), 0)
    assert rows[:, 6].tolist() == [1.0, 90.0]
    np.testing.assert_allclose(rows[0, 1:5], [0.3, 0.3, 0.7, 0.7], atol=1e-6)


def test_scored_boxes_respect_max_detections() -> None:
    spec = PostprocessSpec(kind="boxes-scores", outputs=("boxes", "scores"),
                           box_order="cxcywh", score_threshold=0.0, max_detections=3)
    decoder = create_decoder(spec, Geometry(input_hw=(100, 100)))
    centres = np.linspace(0.05, 0.95, 10, dtype=np.float32)
    boxes = np.stack([centres, centres, np.full(10, 0.05), np.full(10, 0.05)], -1)[None]
    scores = np.linspace(0.1, 1.0, 10, dtype=np.float32).reshape(1, 10, 1)
    rows = _groups(decoder.decode([boxes, scores], np.array([0])), 0)
    np.testing.assert_allclose(rows[:, 5], [1.0, 0.9, 0.8], rtol=1e-6)


def test_yolo_head_letterbox_boxes_map_back_to_the_image() -> None:
    letterbox = ResizeSpec(mode="letterbox", size=(640, 640))
    image_hw = np.array([[300, 600]])  # height, width: padded top and bottom
    spec = PostprocessSpec(kind="yolo", outputs=("output0",), box_order="cxcywh",
                           boxes_normalized=False, class_map="coco80", score_threshold=0.25)
    decoder = create_decoder(spec, Geometry((640, 640), image_hw, letterbox))
    ratio, top, left = letterbox_geometry(300, 600, letterbox)
    x1, y1, x2, y2 = 60.0, 30.0, 300.0, 270.0  # a box on the original image
    cx, cy = (x1 + x2) / 2 * ratio + left, (y1 + y2) / 2 * ratio + top
    head = np.zeros((1, 84, 1), np.float32)
    head[0, :4, 0] = cx, cy, (x2 - x1) * ratio, (y2 - y1) * ratio
    head[0, 4 + 2, 0] = 0.8  # class 2 (car) = COCO id 3
    rows = _groups(decoder.decode([head], np.array([0])), 0)
    np.testing.assert_allclose(rows[0, 1:5], [y1 / 300, x1 / 600, y2 / 300, x2 / 600],
                               atol=1e-5)
    assert rows[0, 6] == 3.0


@pytest.mark.parametrize("height, width", [(300, 600), (600, 300), (480, 640), (7, 5)])
def test_letterbox_geometry_is_where_the_preprocessing_puts_the_image(height: int,
                                                                      width: int) -> None:
    """The decoders' pure letterbox arithmetic agrees with the image the preprocessing
    letterboxes (white image on the grey pad: its first row and column)."""
    from mlperf_pilot.datasets.preprocess import resize

    spec = ResizeSpec(mode="letterbox", size=(64, 64))
    out = resize(np.full((height, width, 3), 255, np.uint8), spec, "pillow")
    ratio, top, left = letterbox_geometry(height, width, spec)
    rows, cols = np.nonzero(out[..., 0] == 255)
    assert (rows.min(), cols.min()) == (top, left)
    assert (rows.max() - top + 1, cols.max() - left + 1) == (round(height * ratio),
                                                             round(width * ratio))


_DECODE_ONLY = """
import sys
import numpy as np
import mlperf_pilot.decoders
import mlperf_pilot.decoders.classification
import mlperf_pilot.decoders.detection
from mlperf_pilot.catalog.cards import PostprocessSpec, ResizeSpec
from mlperf_pilot.decoders import create_decoder
from mlperf_pilot.decoders.base import Geometry

spec = PostprocessSpec(kind="yolo", outputs=("output0",), box_order="cxcywh",
                       boxes_normalized=False, class_map="coco80", score_threshold=0.25)
letterbox = ResizeSpec(mode="letterbox", size=(64, 64))
decoder = create_decoder(spec, Geometry((64, 64), np.array([[30, 60]]), letterbox))
head = np.zeros((1, 84, 1), np.float32)
head[0, :4, 0] = 32, 32, 10, 10
head[0, 6, 0] = 0.9
assert decoder.decode([head], np.array([0])).sizes == [28]
loaded = sorted(m for m in ("PIL", "cv2", "mlperf_pilot.datasets.preprocess")
                if m in sys.modules)
print("loaded:", loaded)
"""


def test_decoding_loads_no_image_library() -> None:
    """A process that only decodes (a function handler behind a network SUT) never
    imports Pillow, OpenCV or the image preprocessing: a letterboxed YOLO decode in a
    fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", _DECODE_ONLY], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded: []"


def test_no_candidate_is_an_empty_response() -> None:
    spec = PostprocessSpec(kind="boxes-scores", outputs=("boxes", "scores"),
                           box_order="cxcywh", score_threshold=0.5)
    decoder = create_decoder(spec, Geometry(input_hw=(64, 64)))
    batch = decoder.decode([np.zeros((2, 5, 4), np.float32), np.zeros((2, 5, 80), np.float32)],
                           np.array([0, 1]))
    assert batch.sizes == [0, 0]


def test_batched_nms_and_the_coco_id_table() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11]], np.float32)
    keep = batched_nms(boxes, np.array([0.9, 0.8]), np.array([0, 0]), 0.5, 10)
    assert keep.tolist() == [0]
    keep = batched_nms(boxes, np.array([0.9, 0.8]), np.array([0, 1]), 0.5, 10)
    assert keep.tolist() == [0, 1]
    assert COCO80_TO_91.tolist() == COCO_IDS


# --- COCO-format datasets ------------------------------------------------------------


def test_load_coco_reads_order_sizes_and_annotation_path(tmp_path: Path) -> None:
    images = make_coco_folder(tmp_path, 4)
    dataset = load_coco(tmp_path, annotations="annotations/instances_val2017.json",
                        image_dir="val2017")
    assert dataset.files == tuple(f"val2017/{img['file_name']}" for img in images)
    assert dataset.image_hw.tolist() == [[img["height"], img["width"]] for img in images]
    assert dataset.annotations == tmp_path / "annotations" / "instances_val2017.json"
    limited = load_coco(tmp_path, annotations="annotations/instances_val2017.json",
                        image_dir="val2017", count=2)
    assert len(limited.files) == 2


def test_missing_image_and_wrong_size_name_the_file(tmp_path: Path) -> None:
    images = make_coco_folder(tmp_path, 3)
    kwargs = {"annotations": "annotations/instances_val2017.json", "image_dir": "val2017"}
    victim = tmp_path / "val2017" / images[1]["file_name"]
    Image.new("RGB", (33, 44)).save(victim)
    with pytest.raises(DatasetError, match=f"{victim.name} is 33x44 pixels"):
        load_coco(tmp_path, **kwargs)
    victim.unlink()
    with pytest.raises(DatasetError, match=f"{victim.name} listed in .* does not exist"):
        load_coco(tmp_path, **kwargs)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ("[]", "is not a COCO json object"),
    ('{"images": [], "annotations": []}', "has no 'categories' list"),
    ('{"images": [{"id": 1, "file_name": "a.jpg", "height": 3}], "annotations": [], '
     '"categories": []}', r"images\[0\] lacks"),
    ('{"images": [], "annotations": [], "categories": []}', "lists no images"),
])
def test_bad_annotation_files_are_dataset_errors(tmp_path: Path, content: str,
                                                 message: str) -> None:
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations" / "instances_val2017.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message) as info:
        load_coco(tmp_path, annotations="annotations/instances_val2017.json",
                  image_dir="val2017")
    assert str(path) in str(info.value)


def test_missing_annotation_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"instances_val2017\.json does not exist"):
        load_coco(tmp_path, annotations="annotations/instances_val2017.json",
                  image_dir="val2017")
    with pytest.raises(DatasetError, match=r"dataset folder .* does not exist"):
        load_coco(tmp_path / "nope", annotations="a.json", image_dir="val2017")


# --- mAP -----------------------------------------------------------------------------


def _log(path: Path, responses: list[tuple[int, np.ndarray]]) -> Path:
    lines = [f'{{ "seq_id" : {i}, "qsl_idx" : {q}, "data" : "{d.tobytes().hex().upper()}" }}'
             for i, (q, d) in enumerate(responses)]
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n")
    return path


def _perfect(images: list[dict], shift_px: int = 0, *, inv: bool = False
             ) -> list[tuple[int, np.ndarray]]:
    """Each image's ground truth as MLPerf groups of 7 (boxes moved right by shift_px)."""
    responses = []
    for idx, img in enumerate(images):
        rows = []
        for obj in img["objects"]:
            x, y, w, h = obj["bbox"]
            x += shift_px
            label = COCO_IDS.index(obj["category_id"]) + 1 if inv else obj["category_id"]
            rows.append([idx, y / img["height"], x / img["width"], (y + h) / img["height"],
                         (x + w) / img["width"], 0.99, label])
        responses.append((idx, np.array(rows, np.float32)))
    return responses


@pytest.fixture
def coco(tmp_path: Path) -> tuple[Path, list[dict]]:
    images = make_coco_folder(tmp_path / "coco", 6)
    return tmp_path / "coco" / "annotations" / "instances_val2017.json", images


def test_ground_truth_boxes_score_100_percent(tmp_path: Path, coco) -> None:
    annotations, images = coco
    result = coco_map(_log(tmp_path / "log.json", _perfect(images)), annotations)
    assert result.line() == "mAP=100.000%"
    assert result.text.endswith("mAP=100.000%\n")
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all" in result.text
    assert (result.images, result.empty, result.mismatched) == (6, 0, 0)


def test_shifted_boxes_score_the_known_lower_value(tmp_path: Path, coco) -> None:
    annotations, images = coco
    # a 14-pixel shift of a 60x60 box: IoU = 46*60 / (2*3600 - 46*60) = 0.6216, so the
    # box matches at IoU 0.50, 0.55, 0.60 and misses at 0.65..0.95: mAP = 3/10
    assert BOX == 60
    result = coco_map(_log(tmp_path / "log.json", _perfect(images, 14)), annotations)
    assert result.line() == "mAP=30.000%"
    assert result.stats[1] == pytest.approx(1.0)  # AP@0.50
    assert result.stats[2] == pytest.approx(0.0)  # AP@0.75


def test_empty_responses_count_as_misses_and_duplicates_once(tmp_path: Path, coco) -> None:
    annotations, images = coco
    responses = _perfect(images)
    responses[0] = (0, np.zeros(0, np.float32))  # image 0 answered with nothing
    responses.append((0, _perfect(images)[0][1]))  # a later duplicate is ignored
    result = coco_map(_log(tmp_path / "log.json", responses), annotations)
    assert result.empty == 1 and result.images == 6
    assert result.percent < 100.0
    nothing = coco_map(_log(tmp_path / "none.json", [(0, np.zeros(0, np.float32))]),
                       annotations)
    assert nothing.line() == "mAP=0.000%"


def test_inverse_map_reads_1_based_80_class_labels(tmp_path: Path, coco) -> None:
    annotations, images = coco
    log = _log(tmp_path / "log.json", _perfect(images, inv=True))
    truth = GroundTruth(annotations=annotations, use_inv_map=True)
    assert compute_accuracy("mAP", log, truth).value == pytest.approx(100.0)
    # without the map, 1-based labels read as COCO ids: those past id 11 are wrong classes
    assert coco_map(log, annotations).percent < 100.0


def test_labels_outside_the_categories_are_an_accuracy_error(tmp_path: Path, coco) -> None:
    annotations, images = coco
    responses = [(i, rows.copy()) for i, rows in _perfect(images)]
    for _, rows in responses:
        rows[:, 6] = 500.0
    with pytest.raises(AccuracyError, match="category id"):
        coco_map(_log(tmp_path / "log.json", responses), annotations)
    with pytest.raises(AccuracyError, match="outside the 80 categories"):
        coco_map(_log(tmp_path / "inv.json", responses), annotations, use_inv_map=True)


def test_mismatched_payload_index_is_reported(tmp_path: Path, coco) -> None:
    annotations, images = coco
    responses = _perfect(images)
    responses[1][1][:, 0] = 5
    result = coco_map(_log(tmp_path / "log.json", responses), annotations)
    assert result.mismatched == len(images[1]["objects"])
    assert "disagrees with LoadGen" in result.text


def test_log_beyond_the_annotation_file_is_an_accuracy_error(tmp_path: Path, coco) -> None:
    annotations, _ = coco
    log = _log(tmp_path / "log.json", [(99, np.zeros(7, np.float32))])
    with pytest.raises(AccuracyError, match="qsl_idx 99"):
        coco_map(log, annotations)


def test_unreadable_annotation_for_map_is_a_dataset_error(tmp_path: Path) -> None:
    log = _log(tmp_path / "log.json", [(0, np.zeros(0, np.float32))])
    with pytest.raises(DatasetError, match="does not exist"):
        coco_map(log, tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": "x"}))
    with pytest.raises(DatasetError, match="cannot be used"):
        coco_map(log, bad)


def test_groups_with_nan_values_are_dropped_and_reported(tmp_path: Path, coco) -> None:
    annotations, images = coco
    responses = [(i, rows.copy()) for i, rows in _perfect(images)]
    responses[0][1][0, 2] = np.nan  # one box of image 0 with a NaN coordinate
    result = coco_map(_log(tmp_path / "log.json", responses), annotations)
    assert "ERROR: 1 detection(s) with NaN or infinite values were ignored" in result.text
    assert result.detections == sum(len(img["objects"]) for img in images) - 1
    assert result.percent < 100.0


# --- output checks before the run, NaN answers ---------------------------------------


@pytest.mark.parametrize(("kind", "outputs", "words", "fits"), [
    ("class-index", [np.zeros((1, 1000), np.float32)], ["float32 (1, 1000)", "1000 values"],
     "argmax"),
    ("class-index", [np.array([0.37], np.float32)], ["0.37", "not a class id"], None),
    ("argmax", [np.array([4], np.int64)], ["int64 (1,)", "one value per sample"],
     "class-index"),
    ("argmax", [np.zeros((1, 1), np.float32)], ["float32 (1, 1)"], "class-index"),
    ("argmax", [np.zeros((2, 10), np.float32)], ["for a batch of 1"], None),
    ("argmax", [np.zeros((1, 10)), np.zeros((1, 10))], ["2 output(s)"], None),
    ("tf-detection", [np.zeros(1), np.zeros((1, 5, 3)), np.zeros((1, 5)), np.zeros((1, 5))],
     ["(1, 5, 3)", "boxes of 4"], None),
    ("yolo", [np.zeros((1, 84))], ["three axes"], None),
])
def test_outputs_that_do_not_fit_the_postprocess_are_refused(
    kind: str, outputs: list[np.ndarray], words: list[str], fits: str | None,
) -> None:
    from mlperf_pilot.decoders import OutputMismatchError

    names = {"tf-detection": ("n", "b", "s", "c")}.get(kind, ("out",))
    decoder = create_decoder(PostprocessSpec(kind=kind, outputs=names))  # type: ignore[arg-type]
    with pytest.raises(OutputMismatchError) as info:
        decoder.check_outputs(outputs, 1)
    for word in words:
        assert word in info.value.message, info.value.message
    assert info.value.fits == fits
    assert info.value.exit_code == 2


@pytest.mark.parametrize(("kind", "outputs"), [
    ("class-index", [np.array([3], np.int64)]),
    ("class-index", [np.array([[3.0]], np.float32)]),  # whole numbers in a float tensor
    ("argmax", [np.zeros((1, 1001), np.uint8)]),  # quantised scores
    ("boxes-scores", [np.zeros((1, 6, 4)), np.zeros((1, 6, 80))]),
    ("boxes-labels-scores", [np.zeros((5, 4)), np.zeros(5), np.zeros(5)]),  # no batch axis
])
def test_outputs_that_fit_pass_the_check(kind: str, outputs: list[np.ndarray]) -> None:
    names = {"boxes-scores": ("b", "s"), "boxes-labels-scores": ("b", "l", "s")}.get(
        kind, ("out",))
    create_decoder(PostprocessSpec(kind=kind, outputs=names)).check_outputs(  # type: ignore[arg-type]
        outputs, 1)


def test_nan_samples_are_found_per_row() -> None:
    decoder = create_decoder(PostprocessSpec(kind="boxes-scores", outputs=("b", "s")))
    boxes = np.zeros((3, 6, 4), np.float32)
    scores = np.zeros((3, 6, 80), np.float32)
    assert decoder.nan_samples([boxes, scores], 3) is None
    boxes[1, 2, 0] = np.nan
    scores[2, 0, 5] = np.nan
    assert decoder.nan_samples([boxes, scores], 3).tolist() == [1, 2]
    # integer outputs cannot hold NaN; a batch-1 output without a batch axis counts whole
    squeezed = create_decoder(PostprocessSpec(kind="boxes-labels-scores",
                                              outputs=("b", "l", "s")))
    out = [np.full((5, 4), np.nan, np.float32), np.zeros(5, np.int64), np.zeros(5, np.float32)]
    assert squeezed.nan_samples(out, 1).tolist() == [0]
