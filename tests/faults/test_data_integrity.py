"""No stale or unverified data is used silently, at the CLI: a changed image is
preprocessed again, a damaged cached sample is remade, a registered model that changed
is refused with the commands that fix it, a damaged cache entry shows in `cache list`
and is cleared by name, and a bad list file or a truncated JPEG is refused naming the
file (and line).

Each case runs ``mlperf-pilot`` in-process on the colour photos and the tiny real ONNX
classifier of tests/builders.py and asserts the exit code, the message (cause and fix)
and what is on disk afterwards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faultkit import CliResult, assert_clean_error

from builders import make_imagenet_folder
from mlperf_pilot.assets.cache import AssetCache, BuildResult

Cli = Callable[..., CliResult]
FAST = ("--duration-ms", "300")
MODEL = "efficientnet-lite0-demo"


def _run(cli: Cli, model: Path, data: Path, results: Path, *extra: str) -> CliResult:
    return cli("run", "--model", MODEL, "--model-path", model, "--dataset-path", data,
               "--scenario", "Offline", "--mode", "accuracy", "--results-dir", results,
               *FAST, *extra)


def _accuracy(results: Path) -> dict[str, Any]:
    path = results / "onnxruntime-cpu" / MODEL / "Offline" / "records" / "accuracy.json"
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def _samples(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "entries" / "preprocessed").glob("*/*.npy"))


def test_a_replaced_image_changes_the_accuracy(cli: Cli, tmp_path: Path, logits_model: Path,
                                               cache_dir: Path) -> None:
    data = tmp_path / "data"
    make_imagenet_folder(data, 5)  # red, green, blue, red, green; all labelled right
    first = _run(cli, logits_model, data, tmp_path / "r1")
    assert first.code == 0, first.text[-3000:]
    assert _accuracy(tmp_path / "r1")["accuracy"]["text"] == "accuracy=100.000%, good=5, total=5"
    # photo 0 (red, label 0) becomes the blue photo 2: the model now answers 2
    (data / "val/img_00000.jpg").write_bytes((data / "val/img_00002.jpg").read_bytes())
    second = _run(cli, logits_model, data, tmp_path / "r2")
    assert second.code == 0, second.text[-3000:]
    assert _accuracy(tmp_path / "r2")["accuracy"]["text"] == "accuracy=80.000%, good=4, total=5"
    assert len(_samples(cache_dir)) == 5  # one entry, the sample remade in place


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_a_damaged_cached_sample_is_remade(cli: Cli, tmp_path: Path, logits_model: Path,
                                           cache_dir: Path, damage: str) -> None:
    data = tmp_path / "data"
    make_imagenet_folder(data, 3)
    assert _run(cli, logits_model, data, tmp_path / "r1").code == 0
    sample = _samples(cache_dir)[1]
    whole = sample.read_bytes()
    if damage == "truncate":
        sample.write_bytes(whole[:1000])
    elif damage == "garbage":
        sample.write_bytes(b"\0" * len(whole))
    else:
        sample.unlink()
    result = _run(cli, logits_model, data, tmp_path / "r2")
    assert result.code == 0, result.text[-3000:]
    assert _accuracy(tmp_path / "r2")["accuracy"]["text"] == "accuracy=100.000%, good=3, total=3"
    assert sample.read_bytes() == whole
    assert not list(sample.parent.glob(".*.tmp*"))  # nothing half-written left


def _write_list(data: Path, line: str, *, at: int = 1) -> None:
    lines = (data / "val_map.txt").read_text().splitlines()
    lines.insert(at, line)
    (data / "val_map.txt").write_text("\n".join(lines) + "\n")


LIST_CASES = [
    # (id, change to the folder, exit code (2: bad input), words of the cause, words of the fix)
    ("dotdot", lambda d: _write_list(d, "../outside.jpg 0"), 2,
     ["val_map.txt:2", "'../outside.jpg'", "outside the dataset folder"], "relative"),
    ("absolute", lambda d: _write_list(d, "/etc/hostname 0"), 2,
     ["val_map.txt:2", "absolute path"], "relative"),
    ("label-1000", lambda d: _write_list(d, "val/img_00001.jpg 1000"), 2,
     ["val_map.txt:2", "label 1000", "outside 0-999"], "fix that line"),
    ("label-1e23", lambda d: _write_list(d, "val/img_00001.jpg 100000000000000000000000"), 2,
     ["val_map.txt:2", "outside 0-999"], "fix that line"),
    ("label-text", lambda d: _write_list(d, "val/img_00001.jpg cat"), 2,
     ["val_map.txt:2", "'cat'", "not an integer"], "0-999"),
    ("latin-1", lambda d: (d / "val_map.txt").write_bytes(
        (d / "val_map.txt").read_bytes() + "val/caf\xe9.jpg 1\n".encode("latin-1")), 2,
     ["not UTF-8", "line 4"], "iconv"),
    ("truncated-jpeg", lambda d: (d / "val/img_00001.jpg").write_bytes(
        (d / "val/img_00001.jpg").read_bytes()[:-300]), 2,
     ["img_00001.jpg", "truncated JPEG"], "complete copy"),
]


@pytest.mark.parametrize(("change", "code", "cause", "fix"), [c[1:] for c in LIST_CASES],
                         ids=[c[0] for c in LIST_CASES])
def test_bad_list_files_and_images_are_refused_before_the_run(
    cli: Cli, tmp_path: Path, logits_model: Path, cache_dir: Path,
    change: Callable[[Path], object], code: int, cause: list[str], fix: str,
) -> None:
    data = tmp_path / "data"
    make_imagenet_folder(data, 3)
    (tmp_path / "outside.jpg").write_bytes((data / "val/img_00000.jpg").read_bytes())
    change(data)
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    result = _run(cli, logits_model, data, tmp_path / "res")
    assert_clean_error(result, code, fix=fix)
    error = next(ln for ln in result.err.splitlines() if ln.startswith("error:"))
    for word in cause:
        assert word in error, (word, error)
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").rglob("*.json"))
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before
    # nothing half-written in the cache (a refused image leaves no sample of it)
    assert not list(cache_dir.rglob("*.tmp*"))


def test_bom_and_crlf_list_files_run(cli: Cli, tmp_path: Path, logits_model: Path) -> None:
    data = tmp_path / "data"
    make_imagenet_folder(data, 3)
    text = (data / "val_map.txt").read_text().replace("\n", "\r\n")
    (data / "val_map.txt").write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = _run(cli, logits_model, data, tmp_path / "res")
    assert result.code == 0, result.text[-3000:]
    assert _accuracy(tmp_path / "res")["accuracy"]["text"] == "accuracy=100.000%, good=3, total=3"


def test_a_registered_model_that_changed_is_refused(cli: Cli, tmp_path: Path,
                                                    logits_model: Path, colour_imagenet: Path,
                                                    cache_dir: Path) -> None:
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(logits_model.read_bytes())
    added = cli("cache", "add", MODEL, mine)
    assert added.code == 0, added.text
    with mine.open("r+b") as handle:  # altered in place, same size
        handle.seek(len(mine.read_bytes()) // 2)
        handle.write(b"\x7f\x7f\x7f\x7f")
    altered = mine.read_bytes()
    result = cli("run", "--model", MODEL, "--dataset-path", colour_imagenet, "--scenario",
                 "Offline", "--mode", "accuracy", "--results-dir", tmp_path / "res", *FAST)
    assert_clean_error(result, 1, cause="changed since `cache add`",
                       fix=f"mlperf-pilot cache clear {MODEL}")
    assert f"mlperf-pilot cache add {MODEL}" in result.err
    assert mine.read_bytes() == altered  # the user's file is never touched
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").rglob("*.json"))
    # the fix the hint names works
    assert cli("cache", "clear", MODEL).code == 0
    assert not list((cache_dir / "entries").rglob("manifest.json"))


def test_a_damaged_entry_shows_in_cache_list_and_clears_by_name(cli: Cli,
                                                                cache_dir: Path) -> None:
    cache = AssetCache(cache_dir)

    def build(folder: Path) -> BuildResult:
        (folder / "m.onnx").write_bytes(b"m" * 4096)
        return BuildResult(main="m.onnx", source="test build")

    entry, _ = cache.get_or_build("model", "resnet50", {"test": 1}, build)
    os.truncate(entry.target, 100)
    listed = cli("cache", "list", "--json")
    assert listed.code == 0, listed.text
    rows = json.loads(listed.out)
    assert [(r["name"], r["intact"]) for r in rows] == [("resnet50", False)]
    assert "has 100 bytes, 4096 when it was cached" in rows[0]["damage"]
    table = cli("cache", "list")
    assert "damaged" in table.out and "cache clear resnet50" in table.out
    cleared = cli("cache", "clear", "resnet50")
    assert cleared.code == 0 and "removed 1 entry" in cleared.out
    assert not entry.path.exists()


@pytest.mark.parametrize("value", ["abc", "g" * 64])
def test_a_malformed_model_checksum_is_a_usage_error(cli: Cli, tmp_path: Path,
                                                     value: str) -> None:
    result = cli("run", "--set", f"model_sha256={value}", "--results-dir", tmp_path / "res",
                 *FAST)
    assert_clean_error(result, 2, cause="model_sha256")
    assert not (tmp_path / "res").exists()
