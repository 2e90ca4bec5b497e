"""The typed shape of catalog cards: what a model or a dataset *is*.

Cards are data (YAML files under ``catalog/models`` and ``catalog/datasets``); these
classes validate them. A card never says how a run is performed beyond its
``run_defaults`` (the lowest layer of a RunSpec).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Card(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------- models


class TensorSpec(_Card):
    name: str
    # -1 (or a string) marks a dynamic dimension such as the batch
    shape: tuple[int | str, ...]
    dtype: Literal["float32", "float16", "uint8", "int8", "int32", "int64"] = "float32"


class ResizeSpec(_Card):
    """How an image is resized before cropping.

    ``short_side``: scale so the short side equals ``size`` (long side floored, as both
    reference recipes do); ``stretch``: resize to exactly ``size`` (height, width);
    ``letterbox``: scale to fit inside ``size`` keeping the aspect ratio, then pad the
    rest with ``pad_value`` (YOLO style).
    """

    mode: Literal["short_side", "stretch", "letterbox"]
    size: int | tuple[int, int]
    interpolation: Literal["area", "bilinear", "nearest", "bicubic"] = "bilinear"
    # The library whose resize the reference uses. "opencv" needs the [opencv] extra for
    # exact reference pixels; without it Pillow is used and the cache key says so.
    library: Literal["opencv", "pillow"] = "pillow"
    pad_value: int = 114


class CropSpec(_Card):
    size: tuple[int, int]  # height, width
    # floor: int((w - cw) / 2) as the MLPerf OpenCV recipes; round: Python's round() as
    # torchvision's center_crop
    offset_rounding: Literal["floor", "round"] = "floor"


class PreprocessSpec(_Card):
    """Image → tensor, in this order: color, resize, crop, dtype, x*scale, (x-mean)/std,
    layout."""

    color: Literal["rgb", "bgr"] = "rgb"
    resize: ResizeSpec
    crop: CropSpec | None = None
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    dtype: Literal["float32", "uint8", "int8"] = "float32"

    @property
    def output_hw(self) -> tuple[int, int]:
        if self.crop is not None:
            return self.crop.size
        size = self.resize.size
        if isinstance(size, int):
            raise ValueError("a short_side resize without a crop has no fixed output size")
        return size

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        h, w = self.output_hw
        return (3, h, w) if self.layout == "NCHW" else (h, w, 3)


class PostprocessSpec(_Card):
    """How a model's outputs become MLPerf response bytes.

    Classification: ``argmax`` takes the argmax of ``outputs[0]`` (logits/probabilities)
    and adds ``offset``; ``class-index``: ``outputs[0]`` already holds the class index,
    add ``offset``. Both answer LoadGen with the class as float32, as the reference does.
    Detection kinds answer with float32 groups of 7 (qsl_idx, ymin, xmin, ymax, xmax,
    score, class) in coordinates normalised to the original image, as the reference:
    ``tf-detection`` (num_detections, boxes yxyx, scores, classes: TF object-detection
    API), ``boxes-labels-scores`` (boxes, labels, scores sorted by score: ssd-resnet34,
    retinanet), ``yolo`` (an ultralytics head (N, 4 + C, A) in input pixels, then NMS),
    ``boxes-scores`` (boxes (N, A, 4) and per-class scores (N, A, C), then NMS).
    ``class_map: coco80`` maps a 0-based 80-class index to COCO category ids in the
    response; ``accuracy_inv_map`` asks the accuracy script for its --use-inv-map instead
    (1-based 80-class labels in the response, as the reference ssd-resnet34 ONNX).
    """

    kind: Literal["argmax", "class-index", "tf-detection", "boxes-labels-scores", "yolo",
                  "boxes-scores"]
    outputs: tuple[str, ...]
    offset: int = 0
    score_threshold: float | None = None
    nms_iou_threshold: float | None = None
    max_detections: int = 100
    class_map: Literal["coco80"] | None = None
    accuracy_inv_map: bool = False
    box_order: Literal["yxyx", "xyxy", "cxcywh"] = "yxyx"
    boxes_normalized: bool = True


class ModelBuild(_Card):
    """A model the project builds itself from files that ship in a Python package."""

    builder: str  # name in mlperf_pilot.assets.builders
    package: str  # distribution that provides the weights (for the hint if missing)
    extra: str  # the mlperf-pilot extra that installs what the builder needs
    params: dict[str, Any] = Field(default_factory=dict)


class ConvertSpec(_Card):
    """A format made from another format of the same card, as a cached asset step:
    ``openvino-ir`` (ONNX → OpenVINO IR .xml/.bin), ``tflite`` (SavedModel → .tflite)."""

    source: str  # the id of the format converted from
    tool: Literal["openvino-ir", "tflite"]
    extra: str  # the mlperf-pilot extra that installs the converter


ModelFileFormat = Literal["onnx", "tensorflow", "pytorch", "tflite", "openvino", "caffe",
                          "darknet", "ncnn"]


class ModelFormat(_Card):
    """One file of a model in one format (a card can offer several).

    ``tensorflow`` is a SavedModel folder or a frozen graph (.pb); ``pytorch`` a
    TorchScript archive, a torch.export archive (.pt2), or with ``options: {pickled:
    true}`` a whole pickled module; ``caffe`` the .prototxt next to its .caffemodel;
    ``darknet`` the .cfg next to its .weights. ``options`` reach the backend as-is."""

    id: str
    format: ModelFileFormat
    file_name: str
    urls: tuple[str, ...] = ()
    # checksums of the file the URLs serve (for an archive: of the archive)
    sha256: str | None = None
    sha384: str | None = None
    md5: str | None = None
    size_bytes: int | None = Field(default=None, ge=1)  # of what the URLs serve
    build: ModelBuild | None = None
    convert: ConvertSpec | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    preprocess: str  # a recipe name in catalog/preprocessing.yaml
    postprocess: PostprocessSpec
    reference_accuracy: float | None = None  # the reference's figure for this file
    notes: str = ""

    @property
    def has_checksum(self) -> bool:
        return bool(self.sha256 or self.sha384 or self.md5)

    @property
    def checksum_is_of_archive(self) -> bool:
        """Whether the checksums are of an archive the file is extracted from (so they
        cannot check the extracted file itself)."""
        return bool(self.urls) and all(
            u.lower().endswith((".tgz", ".tar.gz", ".tar", ".zip", ".tar.xz", ".tar.bz2"))
            for u in self.urls)


class AccuracySpec(_Card):
    metric: Literal["top1", "mAP"]
    reference: float  # percent, the reference implementation's figure
    # The checker's closed-division bound is ratio x checker_reference (e.g. 0.99 x 76.46).
    checker_reference: float | None = None
    ratio: float = 0.99

    @property
    def closed_target(self) -> float:
        return (self.checker_reference or self.reference) * self.ratio


class ModelCard(_Card):
    name: str
    title: str
    description: str = ""
    task: Literal["image-classification", "object-detection"]
    mlperf_model: str  # the model key in mlperf.conf (LoadGen settings)
    benchmark: str  # the benchmark directory name in a submission (checker name)
    dataset: str
    default_format: str
    default_backend: str = "onnxruntime"
    formats: tuple[ModelFormat, ...]
    accuracy: AccuracySpec
    performance_sample_count: int  # mlperf.conf's value for the model
    server_target_latency_ms: float | None = None
    status: str = "current"  # current | retired (removed from the rounds since ...)
    demo: bool = False
    license: str = ""
    run_defaults: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_formats(self) -> ModelCard:
        ids = [f.id for f in self.formats]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate format ids in {self.name}: {ids}")
        if self.default_format not in ids:
            raise ValueError(f"default_format {self.default_format!r} not in {ids}")
        for fmt in self.formats:
            if fmt.convert is not None and fmt.convert.source not in ids:
                raise ValueError(f"format {fmt.id} converts from {fmt.convert.source!r}, "
                                 f"which is not a format of {self.name} ({ids})")
        return self

    def format(self, format_id: str | None) -> ModelFormat:
        wanted = format_id or self.default_format
        for fmt in self.formats:
            if fmt.id == wanted:
                return fmt
        from mlperf_pilot.errors import UnknownPluginError

        raise UnknownPluginError(f"format of {self.name}", wanted, [f.id for f in self.formats])


# -------------------------------------------------------------------------- datasets


class PhotoSource(_Card):
    """Where a packaged photo comes from.

    ``python``: a file inside an installed distribution (``package`` is the import name,
    ``path`` relative to its directory). ``debian``: a file inside a Debian package,
    found installed under ``path`` or fetched with ``apt-get download`` into the cache.
    """

    kind: Literal["python", "debian"]
    package: str
    path: str


class DemoBox(_Card):
    """One object in a demo photo: its COCO category name and pixel box x, y, w, h."""

    category: str
    bbox: tuple[float, float, float, float]


class DemoPhoto(_Card):
    id: str
    source: PhotoSource
    label: int | None = None  # ImageNet class index, 0..999 (classification sets)
    class_name: str = ""
    boxes: tuple[DemoBox, ...] = ()  # objects (detection sets)
    crowd: tuple[DemoBox, ...] = ()  # crowd regions (COCO iscrowd=1: ignored by COCOeval)
    sha256: str
    note: str = ""


class DatasetCard(_Card):
    name: str
    title: str
    description: str = ""
    task: Literal["image-classification", "object-detection"]
    layout: Literal["imagenet", "coco", "openimages"]
    # COCO category names -> ids, for demo sets written by the project (COCO 2017 ids)
    categories: dict[str, int] = Field(default_factory=dict)
    size: int | None = None  # images in the full set
    classes: int = Field(default=1000, ge=1)  # imagenet: labels are 0 .. classes-1
    list_file: str | None = None  # imagenet: val_map.txt
    annotations: str | None = None  # coco/openimages: annotation json, relative
    image_dir: str = ""  # relative to the dataset root
    how_to_get: str = ""
    urls: tuple[str, ...] = ()
    builder: str | None = None  # built by the project (demo sets)
    photos: tuple[DemoPhoto, ...] = ()

    @model_validator(mode="after")
    def _check_photos(self) -> DatasetCard:
        for photo in self.photos:
            if self.layout == "imagenet" and photo.label is None:
                raise ValueError(f"photo {photo.id} of {self.name} has no ImageNet label")
            unknown = [b.category for b in (*photo.boxes, *photo.crowd)
                       if b.category not in self.categories]
            if unknown:
                raise ValueError(f"photo {photo.id} of {self.name}: categories {unknown} are "
                                 "not in the card's categories")
        return self
