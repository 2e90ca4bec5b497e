"""Image → model input tensor, exactly as a PreprocessSpec says.

Two libraries can do the decoding and resizing: OpenCV (what the MLPerf reference uses
for its ImageNet/COCO recipes, needed for bit-exact reference pixels, the ``[opencv]``
extra) and Pillow (always installed; what torchvision uses). A spec names the library
its reference uses; :func:`resolve_library` falls back to Pillow when OpenCV is not
installed, and the library actually used is part of the preprocessed-data cache key.

Order of operations: decode → RGB (or BGR) → resize → center crop → dtype →
``x * scale`` (done as ``x / (1/scale)`` when that is an integer, as the reference
divides by 255) → ``(x - mean) / std`` → layout.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from mlperf_pilot.catalog.cards import CropSpec, PreprocessSpec, ResizeSpec
from mlperf_pilot.errors import DatasetInputError

_PIL_FILTERS = {
    "area": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "bicubic": Image.Resampling.BICUBIC,
}


def opencv_available() -> bool:
    return importlib.util.find_spec("cv2") is not None


def resolve_library(spec: PreprocessSpec) -> str:
    """The library that will do the work: the spec's, unless OpenCV is missing."""
    if spec.resize.library == "opencv" and opencv_available():
        return "opencv"
    return "pillow"


def library_version(library: str) -> str:
    if library == "opencv":
        import cv2

        return f"opencv-{cv2.__version__}"
    import PIL

    return f"pillow-{PIL.__version__}"


# ------------------------------------------------------------------------------ decode


_JPEG_SOI, _JPEG_SOS, _JPEG_EOI = b"\xff\xd8\xff", b"\xff\xda", b"\xff\xd9"


def check_not_truncated(path: Path, data: bytes) -> None:
    """Refuse a JPEG that ends before its end-of-image marker.

    OpenCV decodes such a file with only a warning on stderr ("Premature end of JPEG
    file") and grey pixels where the data is missing. The markers cannot occur inside
    entropy-coded data (0xFF is stuffed there), so a whole file has an EOI after its last
    start-of-scan; an EXIF thumbnail's EOI comes before the main image's scans."""
    if not data.startswith(_JPEG_SOI):
        return
    if data.rfind(_JPEG_EOI) < data.rfind(_JPEG_SOS) or _JPEG_SOS not in data:
        raise DatasetInputError(
            f"image {path} is a truncated JPEG (it ends before its end-of-image marker)",
            hint="replace it with a complete copy, or remove its line from the list file",
        )


def load_rgb(path: Path, library: str) -> np.ndarray:
    """Decode an image file into an HxWx3 uint8 RGB array (greyscale and alpha handled).

    A truncated JPEG is a DatasetError with either library."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetInputError(
            f"image {path} does not exist", hint="check the dataset folder and its list file"
        ) from None
    except OSError as exc:
        raise DatasetInputError(f"image {path} cannot be read: {exc.strerror or exc}",
                           hint="check the file's permissions") from exc
    check_not_truncated(path, data)
    if library == "opencv":
        return _load_rgb_opencv(path)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode != "RGB":
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetInputError(
            f"image {path} cannot be read: {exc}",
            hint="replace the file with a valid JPEG/PNG or remove it from the list file",
        ) from exc


def _load_rgb_opencv(path: Path) -> np.ndarray:
    import cv2

    # imread, not imdecode of the bytes already read: the reference reads files this way
    # (EXIF orientation included), and the second read comes from the page cache
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetInputError(
            f"image {path} cannot be read by OpenCV",
            hint="replace the file with a valid JPEG/PNG or remove it from the list file",
        )
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------ resize


def short_side_size(height: int, width: int, short: int) -> tuple[int, int]:
    """(height, width) with the short side = ``short`` and the long side floored, as
    both reference recipes compute it."""
    if height > width:
        return int(short * height / width), short
    return short, int(short * width / height)


def resize(img: np.ndarray, spec: ResizeSpec, library: str) -> np.ndarray:
    height, width = img.shape[:2]
    if spec.mode == "letterbox":
        return _letterbox(img, spec, library)
    if spec.mode == "short_side":
        if not isinstance(spec.size, int):
            raise ValueError("short_side resize needs an int size")
        new_h, new_w = short_side_size(height, width, spec.size)
    else:
        size = spec.size
        new_h, new_w = (size, size) if isinstance(size, int) else size
    return _resize_to(img, new_h, new_w, spec.interpolation, library)


def _resize_to(
    img: np.ndarray, new_h: int, new_w: int, interpolation: str, library: str
) -> np.ndarray:
    if img.shape[0] == new_h and img.shape[1] == new_w:
        return img
    if library == "opencv":
        import cv2

        flags = {
            "area": cv2.INTER_AREA,
            "bilinear": cv2.INTER_LINEAR,
            "nearest": cv2.INTER_NEAREST,
            "bicubic": cv2.INTER_CUBIC,
        }
        return cv2.resize(img, (new_w, new_h), interpolation=flags[interpolation])
    pil = Image.fromarray(img).resize((new_w, new_h), _PIL_FILTERS[interpolation])
    return np.asarray(pil, dtype=np.uint8)


def _letterbox(img: np.ndarray, spec: ResizeSpec, library: str) -> np.ndarray:
    # the placement is decoders.base.letterbox_geometry's (decoders map boxes back with it)
    height, width = img.shape[:2]
    size = spec.size
    out_h, out_w = (size, size) if isinstance(size, int) else size
    ratio = min(out_h / height, out_w / width)
    new_h, new_w = round(height * ratio), round(width * ratio)
    resized = _resize_to(img, new_h, new_w, spec.interpolation, library)
    pad_h, pad_w = (out_h - new_h) / 2, (out_w - new_w) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    canvas = np.full((out_h, out_w, 3), spec.pad_value, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def center_crop(img: np.ndarray, crop: CropSpec) -> np.ndarray:
    height, width = img.shape[:2]
    out_h, out_w = crop.size
    if height < out_h or width < out_w:
        raise ValueError(f"cannot crop {out_h}x{out_w} from a {height}x{width} image")
    if crop.offset_rounding == "round":
        top = round((height - out_h) / 2.0)
        left = round((width - out_w) / 2.0)
    else:
        top = int((height - out_h) / 2)
        left = int((width - out_w) / 2)
    return img[top : top + out_h, left : left + out_w]


# ------------------------------------------------------------------------------ tensor


def to_tensor(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    if spec.color == "bgr":
        img = img[..., ::-1]
    if spec.dtype == "uint8":
        out: np.ndarray = np.ascontiguousarray(img, dtype=np.uint8)
    else:
        x = np.asarray(img, dtype=np.float32)
        if spec.scale != 1.0:
            divisor = 1.0 / spec.scale
            if abs(divisor - round(divisor)) < 1e-6:
                x = x / np.float32(round(divisor))
            else:
                x = x * np.float32(spec.scale)
        if any(m != 0.0 for m in spec.mean):
            x = x - np.asarray(spec.mean, dtype=np.float32)
        if any(s != 1.0 for s in spec.std):
            x = x / np.asarray(spec.std, dtype=np.float32)
        out = x if spec.dtype == "float32" else np.clip(np.round(x), -128, 127).astype(np.int8)
    if spec.layout == "NCHW":
        out = out.transpose(2, 0, 1)
    return np.ascontiguousarray(out)


def preprocess_image(path: Path, spec: PreprocessSpec, library: str) -> np.ndarray:
    """One image file → one sample tensor (no batch dimension)."""
    img = load_rgb(path, library)
    img = resize(img, spec.resize, library)
    if spec.crop is not None:
        try:
            img = center_crop(img, spec.crop)
        except ValueError as exc:
            raise DatasetInputError(f"image {path}: {exc}") from exc
    return to_tensor(img, spec)


def spec_fingerprint(spec: PreprocessSpec, library: str) -> dict[str, Any]:
    """What identifies preprocessed data: the spec and the library (with its version)."""
    return {"spec": spec.model_dump(mode="json"), "library": library_version(library)}
