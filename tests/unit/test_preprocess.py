from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.catalog.cards import CropSpec, PreprocessSpec, ResizeSpec
from mlperf_pilot.datasets.preprocess import (
    center_crop,
    load_rgb,
    preprocess_image,
    short_side_size,
    to_tensor,
)
from mlperf_pilot.errors import DatasetError


def test_short_side_sizes_match_the_reference_formula() -> None:
    # int(256 * long / short), short side 256 (vgg and torchvision agree)
    assert short_side_size(375, 500, 256) == (256, 341)
    assert short_side_size(500, 375, 256) == (341, 256)
    assert short_side_size(256, 256, 256) == (256, 256)


def test_center_crop_offsets_floor_versus_round() -> None:
    img = np.arange(5 * 7).reshape(5, 7, 1)
    floor = center_crop(img, CropSpec(size=(2, 2), offset_rounding="floor"))
    rounded = center_crop(img, CropSpec(size=(2, 2), offset_rounding="round"))
    # (5-2)/2 = 1.5 -> floor 1, Python round(1.5) = 2; (7-2)/2 = 2.5 -> 2 both ways
    assert floor[0, 0, 0] == img[1, 2, 0]
    assert rounded[0, 0, 0] == img[2, 2, 0]


def test_vgg_recipe_subtracts_means_and_is_nchw(tmp_path: Path) -> None:
    recipe = load_catalog().recipe("imagenet-vgg-nchw")
    path = tmp_path / "red.png"
    Image.fromarray(np.full((300, 400, 3), (200, 100, 50), np.uint8)).save(path)
    out = preprocess_image(path, recipe, "pillow")
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [200 - 123.68, 100 - 116.78, 50 - 103.94], rtol=1e-5)


def test_pytorch_recipe_normalises_like_torchvision() -> None:
    recipe = load_catalog().recipe("imagenet-pytorch")
    img = np.full((224, 224, 3), 255, np.uint8)
    out = to_tensor(img, recipe)
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[:, 5, 5], expected, rtol=1e-6)


def test_uint8_nhwc_recipe_keeps_pixels() -> None:
    spec = PreprocessSpec(resize=ResizeSpec(mode="stretch", size=(30, 20)), layout="NHWC",
                          dtype="uint8")
    img = np.random.default_rng(0).integers(0, 255, (30, 20, 3), dtype=np.uint8)
    out = to_tensor(img, spec)
    assert out.dtype == np.uint8 and out.shape == (30, 20, 3)
    np.testing.assert_array_equal(out, img)


def test_greyscale_and_rgba_become_rgb(tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((10, 12), 77, np.uint8)).save(grey)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((10, 12, 4), 9, np.uint8)).save(rgba)
    assert load_rgb(grey, "pillow").shape == (10, 12, 3)
    assert load_rgb(rgba, "pillow")[0, 0].tolist() == [9, 9, 9]


def test_letterbox_pads_with_grey() -> None:
    from mlperf_pilot.datasets.preprocess import resize

    img = np.zeros((100, 200, 3), np.uint8)
    out = resize(img, ResizeSpec(mode="letterbox", size=(64, 64)), "pillow")
    assert out.shape == (64, 64, 3)
    assert out[0, 0, 0] == 114 and out[32, 32, 0] == 0


def test_missing_and_corrupt_images_name_the_file(tmp_path: Path) -> None:
    recipe = load_catalog().recipe("imagenet-vgg-nchw")
    with pytest.raises(DatasetError, match=r"nope\.jpg"):
        preprocess_image(tmp_path / "nope.jpg", recipe, "pillow")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match=r"bad\.jpg"):
        preprocess_image(bad, recipe, "pillow")


@pytest.mark.skipif(not __import__("importlib").util.find_spec("cv2"), reason="no OpenCV")
def test_opencv_vgg_recipe_gives_the_reference_pixels(tmp_path: Path) -> None:
    """The resnet50 ONNX recipe, computed step by step as the reference describes it:
    cv2.imread, BGR->RGB, INTER_AREA resize of the short side to int(224/0.875),
    int() center crop, float32 minus the RGB means, HWC->CHW."""
    import cv2

    rng = np.random.default_rng(1)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(path, quality=90)
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    short = int(100.0 * 224 / 87.5)
    h, w = img.shape[:2]
    size = (int(short * w / h), short) if w > h else (short, int(short * h / w))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    top, left = int((h - 224) / 2), int((w - 224) / 2)
    img = img[top:top + 224, left:left + 224].astype(np.float32)
    expected = (img - np.array([123.68, 116.78, 103.94], np.float32)).transpose(2, 0, 1)
    got = preprocess_image(path, load_catalog().recipe("imagenet-vgg-nchw"), "opencv")
    np.testing.assert_array_equal(got, expected)
    pillow = preprocess_image(path, load_catalog().recipe("imagenet-vgg-nchw"), "pillow")
    assert pillow.shape == got.shape  # the fallback differs in pixels, not in shape
