"""Downloads against a real HTTP server on 127.0.0.1: resume, retries, checksums."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.assets.fetch import download, file_digests, verify_file
from mlperf_pilot.assets.models import resolve_model
from mlperf_pilot.catalog.cards import ModelCard
from mlperf_pilot.catalog.loader import load_catalog
from mlperf_pilot.errors import AssetError

SIZE = 300_000


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, bytes]:
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(SIZE)
    (root / "model.onnx").write_bytes(data)
    return root, data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Recorder:
    """A Progress that keeps what it was told."""

    def __init__(self) -> None:
        self.totals: list[float | None] = []
        self.advanced = 0.0

    def task(self, description: str, total: float | None = None, unit: str = "") -> Recorder:
        return self

    def note(self, message: str) -> None:
        return None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, amount: float = 1) -> None:
        self.advanced += amount

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        if total is not None:
            self.totals.append(total)
        if completed is not None:
            self.advanced = completed


def test_download_verifies_sha256_and_md5(http_file_server, served, tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    dest = tmp_path / "out" / "model.onnx"
    digests = download(server.url("model.onnx"), dest, sha256=sha256(data),
                       md5=hashlib.md5(data).hexdigest())
    assert dest.read_bytes() == data
    assert not dest.with_name("model.onnx.part").exists()
    assert digests.sha256 == sha256(data) and digests.size == SIZE


def test_resume_after_a_dropped_connection_sends_a_range(http_file_server, served,
                                                          tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root, "--drop-after", "100000")
    dest = tmp_path / "model.onnx"
    download(server.url("model.onnx"), dest, sha256=sha256(data), backoff_s=0.01)
    assert dest.read_bytes() == data
    requests = server.requests()
    assert len(requests) == 2
    assert requests[0]["range"] is None
    assert requests[1]["range"] == "bytes=100000-" and requests[1]["status"] == 206


def test_a_server_ignoring_range_restarts_cleanly(http_file_server, served, tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root, "--drop-after", "50000", "--ignore-range")
    dest = tmp_path / "model.onnx"
    download(server.url("model.onnx"), dest, sha256=sha256(data), backoff_s=0.01)
    assert dest.read_bytes() == data
    assert [r["status"] for r in server.requests()] == [200, 200]


def test_transient_errors_are_retried_then_given_up(http_file_server, served,
                                                     tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root, "--fail-first", "2")
    download(server.url("model.onnx"), tmp_path / "a.onnx", sha256=sha256(data), backoff_s=0.01)
    assert [r["status"] for r in server.requests()] == [500, 500, 200]
    server = http_file_server(root, "--fail-first", "5")
    with pytest.raises(AssetError, match="after 1 retries"):
        download(server.url("model.onnx"), tmp_path / "b.onnx", retries=1, backoff_s=0.01)


def test_404_fails_at_once_naming_the_url(http_file_server, served, tmp_path: Path) -> None:
    root, _ = served
    server = http_file_server(root)
    with pytest.raises(AssetError) as info:
        download(server.url("missing.onnx"), tmp_path / "m.onnx", backoff_s=0.01)
    assert server.url("missing.onnx") in info.value.message and "404" in info.value.message
    assert len(server.requests()) == 1


def test_bad_checksum_deletes_the_file_and_names_both_hashes(http_file_server, served,
                                                             tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    dest = tmp_path / "model.onnx"
    wrong = "0" * 64
    with pytest.raises(AssetError) as info:
        download(server.url("model.onnx"), dest, sha256=wrong)
    assert wrong in info.value.message and sha256(data) in info.value.message
    assert not dest.exists() and not dest.with_name("model.onnx.part").exists()


def test_complete_part_file_is_verified_without_refetching(http_file_server, served,
                                                           tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    dest = tmp_path / "model.onnx"
    dest.with_name("model.onnx.part").write_bytes(data)
    download(server.url("model.onnx"), dest, sha256=sha256(data))
    assert dest.read_bytes() == data
    assert [r["status"] for r in server.requests()] == [416]


def test_file_urls_and_progress(served, tmp_path: Path) -> None:
    root, data = served
    recorder = Recorder()
    dest = tmp_path / "copy.onnx"
    download((root / "model.onnx").as_uri(), dest, sha256=sha256(data), progress=recorder)
    assert dest.read_bytes() == data
    assert recorder.advanced == SIZE


def test_http_progress_total_is_the_file_size(http_file_server, served, tmp_path: Path) -> None:
    root, _ = served
    server = http_file_server(root)
    recorder = Recorder()
    download(server.url("model.onnx"), tmp_path / "m.onnx", progress=recorder)
    assert SIZE in recorder.totals and recorder.advanced == SIZE


def test_verify_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert verify_file(path, md5=hashlib.md5(b"abc").hexdigest()).size == 3
    with pytest.raises(AssetError, match="checksum mismatch"):
        verify_file(path, sha256="1" * 64, delete_on_mismatch=False)
    assert path.exists()
    assert file_digests(path).sha256 == sha256(b"abc")


def _card_with_url(url: str, md5: str) -> ModelCard:
    card = load_catalog().model("resnet50")
    data = card.model_dump(mode="json")
    fmt = next(f for f in data["formats"] if f["id"] == "onnx-opset11")
    fmt["urls"] = [url]
    fmt["md5"] = md5
    data["formats"] = [fmt]
    return ModelCard.model_validate(data)


def test_model_download_goes_through_the_cache_once(http_file_server, served,
                                                    tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    card = _card_with_url(server.url("model.onnx"), hashlib.md5(data).hexdigest())
    cache = AssetCache(tmp_path / "cache")
    first = resolve_model(card, card.formats[0], None, cache)
    second = resolve_model(card, card.formats[0], None, cache)
    assert first.path == second.path and first.path.read_bytes() == data
    assert not first.from_cache and second.from_cache
    assert len(server.requests()) == 1
    assert [e.name for e in cache.entries(kind="model")] == ["resnet50"]


def test_model_download_with_wrong_checksum_leaves_no_entry(http_file_server, served,
                                                            tmp_path: Path) -> None:
    root, _ = served
    server = http_file_server(root)
    card = _card_with_url(server.url("model.onnx"), "f" * 32)
    cache = AssetCache(tmp_path / "cache")
    with pytest.raises(AssetError, match=r"checksum mismatch for resnet50_v1\.onnx"):
        resolve_model(card, card.formats[0], None, cache)
    assert cache.entries() == []
