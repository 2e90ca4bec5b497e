"""Downloads against a real HTTP server on 127.0.0.1: resume, retries, checksums, progress."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.assets.fetch import Digests, download, file_digests, verify_file
from mlperf_pilot.assets.models import resolve_model
from mlperf_pilot.catalog.cards import ModelCard
from mlperf_pilot.catalog.loader import load_catalog
from mlperf_pilot.errors import AssetError, ChecksumError, UnverifiedDownloadError

SIZE = 300_000
FAST = {"backoff_s": 0.01}
StartServer = Callable[..., Any]


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, bytes]:
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(SIZE)
    (root / "model.onnx").write_bytes(data)
    return root, data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


class RecordedTask:
    def __init__(self, description: str, total: float | None) -> None:
        self.description = description
        self.total = total
        self.completed = 0.0
        self.advances: list[float] = []

    def advance(self, amount: float = 1) -> None:
        self.advances.append(amount)
        self.completed += amount

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total

    def __enter__(self) -> RecordedTask:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class RecordingProgress:
    """A Progress that keeps every task it opens."""

    def __init__(self) -> None:
        self.tasks: list[RecordedTask] = []

    def task(self, description: str, total: float | None = None, unit: str = "") -> RecordedTask:
        self.tasks.append(RecordedTask(description, total))
        return self.tasks[-1]

    def note(self, message: str) -> None:
        return None


def test_download_with_sha256_returns_the_digests(http_file_server: StartServer, served,
                                                  tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    dest = tmp_path / "new" / "folder" / "model.onnx"
    digests = download(server.url("model.onnx"), dest, sha256=sha256(data).upper())
    assert dest.read_bytes() == data
    assert not part_of(dest).exists()
    assert digests == Digests(sha256=sha256(data), md5=md5(data), size=SIZE,
                              sha384=hashlib.sha384(data).hexdigest())
    assert server.requests()[0]["range"] is None


def test_md5_is_verified(http_file_server: StartServer, served, tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    good = download(server.url("model.onnx"), tmp_path / "good.onnx", md5=md5(data))
    assert good.md5 == md5(data)
    dest = tmp_path / "bad.onnx"
    wrong = "a" * 32
    with pytest.raises(AssetError) as info:
        download(server.url("model.onnx"), dest, md5=wrong)
    assert f"expected md5 {wrong}" in info.value.message and md5(data) in info.value.message
    assert not dest.exists() and not part_of(dest).exists()


def test_resume_after_a_dropped_connection_sends_a_range(http_file_server: StartServer, served,
                                                          tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root, "--drop-after", "100000")
    dest = tmp_path / "model.onnx"
    progress = RecordingProgress()
    download(server.url("model.onnx"), dest, sha256=sha256(data), progress=progress, **FAST)
    assert dest.read_bytes() == data
    requests = server.requests()
    assert [(r["range"], r["status"], r["dropped"]) for r in requests] == [
        (None, 200, True), ("bytes=100000-", 206, False)]
    [task] = progress.tasks
    assert task.total == SIZE and task.completed == SIZE


def test_two_drops_resume_twice_with_a_correct_checksum(http_file_server: StartServer, served,
                                                        tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root, "--drop-after", "100000", "--drop-times", "2")
    dest = tmp_path / "model.onnx"
    digests = download(server.url("model.onnx"), dest, sha256=sha256(data), md5=md5(data),
                       **FAST)
    assert dest.read_bytes() == data and digests.sha256 == sha256(data)
    assert [r["range"] for r in server.requests()] == [None, "bytes=100000-", "bytes=200000-"]


def test_a_server_ignoring_range_restarts_from_zero(http_file_server: StartServer, served,
                                                    tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root, "--drop-after", "50000", "--ignore-range")
    dest = tmp_path / "model.onnx"
    download(server.url("model.onnx"), dest, sha256=sha256(data), **FAST)
    assert dest.read_bytes() == data
    assert [(r["range"], r["status"]) for r in server.requests()] == [
        (None, 200), ("bytes=50000-", 200)]


def test_a_partial_file_from_an_earlier_run_is_resumed(http_file_server: StartServer, served,
                                                       tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    dest = tmp_path / "model.onnx"
    part_of(dest).write_bytes(data[:123_456])
    digests = download(server.url("model.onnx"), dest, sha256=sha256(data))
    assert dest.read_bytes() == data and digests.size == SIZE
    assert [(r["range"], r["status"]) for r in server.requests()] == [("bytes=123456-", 206)]


def test_transient_500s_are_retried(http_file_server: StartServer, served,
                                    tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root, "--fail-first", "2")
    dest = tmp_path / "model.onnx"
    download(server.url("model.onnx"), dest, sha256=sha256(data), **FAST)
    assert dest.read_bytes() == data
    assert [r["status"] for r in server.requests()] == [500, 500, 200]


def test_retries_run_out(http_file_server: StartServer, served, tmp_path: Path) -> None:
    root, _ = served
    server = http_file_server(root, "--fail-first", "2")
    with pytest.raises(AssetError) as info:
        download(server.url("model.onnx"), tmp_path / "model.onnx", retries=1,
                 allow_unverified=True, **FAST)
    assert "after 1 retries" in info.value.message and "HTTP 500" in info.value.message
    assert server.url("model.onnx") in info.value.message
    assert [r["status"] for r in server.requests()] == [500, 500]


def test_404_fails_at_once_naming_the_url(http_file_server: StartServer, served,
                                          tmp_path: Path) -> None:
    root, _ = served
    server = http_file_server(root)
    dest = tmp_path / "missing.onnx"
    with pytest.raises(AssetError) as info:
        download(server.url("missing.onnx"), dest, allow_unverified=True, **FAST)
    assert server.url("missing.onnx") in info.value.message and "404" in info.value.message
    assert info.value.hint
    assert len(server.requests()) == 1
    assert not dest.exists() and not part_of(dest).exists()


def test_wrong_sha256_deletes_everything_and_names_both_hashes(
    http_file_server: StartServer, served, tmp_path: Path,
) -> None:
    root, data = served
    server = http_file_server(root)
    dest = tmp_path / "model.onnx"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        download(server.url("model.onnx"), dest, sha256=wrong)
    message = info.value.message
    assert "model.onnx" in message and wrong in message and sha256(data) in message
    assert not dest.exists() and not part_of(dest).exists()


def test_a_complete_part_file_is_verified_after_a_416(http_file_server: StartServer, served,
                                                      tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    dest = tmp_path / "model.onnx"
    part_of(dest).write_bytes(data)
    digests = download(server.url("model.onnx"), dest, sha256=sha256(data))
    assert dest.read_bytes() == data and digests.size == SIZE
    assert not part_of(dest).exists()
    assert [(r["range"], r["status"]) for r in server.requests()] == [(f"bytes={SIZE}-", 416)]


def test_a_part_file_longer_than_the_file_is_discarded(http_file_server: StartServer, served,
                                                       tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    dest = tmp_path / "model.onnx"
    part_of(dest).write_bytes(os.urandom(SIZE + 10))
    download(server.url("model.onnx"), dest, sha256=sha256(data), **FAST)
    assert dest.read_bytes() == data
    assert [r["status"] for r in server.requests()] == [416, 200]


def test_file_url_is_copied_and_verified(served, tmp_path: Path) -> None:
    root, data = served
    url = (root / "model.onnx").as_uri()
    dest = tmp_path / "copy" / "model.onnx"
    digests = download(url, dest, sha256=sha256(data), md5=md5(data))
    assert dest.read_bytes() == data and digests.size == SIZE
    bad = tmp_path / "bad.onnx"
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        download(url, bad, sha256="1" * 64)
    assert not bad.exists() and not part_of(bad).exists()
    with pytest.raises(AssetError, match="does not exist"):
        download((root / "nope.onnx").as_uri(), tmp_path / "nope.onnx")


def test_unsupported_scheme_fails_without_a_request(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="unsupported URL scheme 'ftp'"):
        download("ftp://127.0.0.1/model.onnx", tmp_path / "m.onnx")


def test_refused_connection_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/model.onnx"
    with pytest.raises(AssetError) as info:
        download(url, tmp_path / "m.onnx", retries=2, allow_unverified=True, **FAST)
    assert url in info.value.message and "after 2 retries" in info.value.message
    assert "ConnectError" in info.value.message


def test_injected_transport_and_429_retry(tmp_path: Path) -> None:
    body = os.urandom(1000)
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(429)
        return httpx.Response(200, content=body)

    dest = tmp_path / "m.bin"
    digests = download("https://mirror.invalid/m.bin", dest, sha256=sha256(body),
                       transport=httpx.MockTransport(handler), **FAST)
    assert dest.read_bytes() == body and digests.size == len(body)
    assert len(calls) == 2 and calls[0].headers["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("over_http", [True, False])
def test_progress_total_is_the_file_size_in_big_chunks(
    http_file_server: StartServer, served, tmp_path: Path, over_http: bool,
) -> None:
    root, _ = served
    url = http_file_server(root).url("model.onnx") if over_http else \
        (root / "model.onnx").as_uri()
    progress = RecordingProgress()
    download(url, tmp_path / "m.onnx", progress=progress, description="fetching m",
             allow_unverified=True)
    [task] = progress.tasks
    assert task.description == "fetching m"
    assert task.total == SIZE and sum(task.advances) == SIZE
    assert all(amount >= 64 * 1024 for amount in task.advances[:-1])


def test_verify_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert verify_file(path, md5=md5(b"abc").upper()).size == 3
    with pytest.raises(ChecksumError) as info:
        verify_file(path, sha256="1" * 64, name="weights.bin", delete_on_mismatch=False)
    assert info.value.message == (
        f"checksum mismatch for weights.bin: expected sha256 {'1' * 64}, got {sha256(b'abc')}")
    assert path.exists()
    with pytest.raises(AssetError):
        verify_file(path, sha256="1" * 64)
    assert not path.exists()
    with pytest.raises(AssetError, match="does not exist"):
        verify_file(path)


def test_file_digests_of_a_file_bigger_than_a_chunk(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert file_digests(path) == Digests(sha256(data), md5(data), len(data),
                                         hashlib.sha384(data).hexdigest())


def _card_with_url(url: str | list[str], checksum: str) -> ModelCard:
    card = load_catalog().model("resnet50")
    data = card.model_dump(mode="json")
    fmt = next(f for f in data["formats"] if f["id"] == "onnx-opset11")
    fmt["urls"] = [url] if isinstance(url, str) else url
    fmt["md5"] = checksum
    data["formats"] = [fmt]
    return ModelCard.model_validate(data)


def test_model_download_goes_through_the_cache_once(http_file_server: StartServer, served,
                                                    tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    card = _card_with_url(server.url("model.onnx"), md5(data))
    cache = AssetCache(tmp_path / "cache")
    first = resolve_model(card, card.formats[0], None, cache)
    second = resolve_model(card, card.formats[0], None, cache)
    assert first.path == second.path and first.path.read_bytes() == data
    assert not first.from_cache and second.from_cache
    assert len(server.requests()) == 1
    assert [e.name for e in cache.entries(kind="model")] == ["resnet50"]


def test_model_download_with_wrong_checksum_leaves_no_entry(http_file_server: StartServer,
                                                            served, tmp_path: Path) -> None:
    root, _ = served
    server = http_file_server(root)
    card = _card_with_url(server.url("model.onnx"), "f" * 32)
    cache = AssetCache(tmp_path / "cache")
    with pytest.raises(ChecksumError, match=r"checksum mismatch for resnet50_v1\.onnx"):
        resolve_model(card, card.formats[0], None, cache)
    assert cache.entries() == []


def test_a_failing_mirror_falls_through_but_a_wrong_file_stops(
        http_file_server: StartServer, served, tmp_path: Path) -> None:
    """A mirror that cannot serve (404) is skipped for the next; a mirror serving other
    bytes than the card pins ends the download with the ChecksumError (by its type: the
    mirrors after it are not asked)."""
    root, data = served
    (root / "other.onnx").write_bytes(os.urandom(SIZE))
    server = http_file_server(root)
    missing, wrong, good = (server.url(n) for n in ("missing.onnx", "other.onnx", "model.onnx"))
    card = _card_with_url([missing, good], md5(data))
    resolved = resolve_model(card, card.formats[0], None, AssetCache(tmp_path / "cache-a"))
    assert resolved.path.read_bytes() == data
    assert [r["path"] for r in server.requests()] == ["/missing.onnx", "/model.onnx"]
    card = _card_with_url([missing, wrong, good], md5(data))
    cache = AssetCache(tmp_path / "cache-b")
    with pytest.raises(ChecksumError, match="checksum mismatch for resnet50_v1\\.onnx") as info:
        resolve_model(card, card.formats[0], None, cache)
    assert info.value.exit_code == 1 and isinstance(info.value, AssetError)
    assert [r["path"] for r in server.requests()][2:] == ["/missing.onnx", "/other.onnx"]
    assert cache.entries() == []


# --- nothing unverified is returned as complete ----------------------------------------


def test_a_body_without_length_or_checksum_is_refused(http_file_server: StartServer, served,
                                                      tmp_path: Path) -> None:
    root, _ = served
    server = http_file_server(root, "--no-length", "--drop-after", "100000")
    dest = tmp_path / "model.onnx"
    with pytest.raises(UnverifiedDownloadError, match="does not say how long") as info:
        _download_https_like(server.url("model.onnx"), dest)
    assert "--allow-unverified-download" in info.value.hint
    assert not dest.exists() and not part_of(dest).exists()


def _download_https_like(url: str, dest: Path, **kwargs: Any) -> Digests:
    """A download treated as if over https (the plain-http refusal is tested apart): the
    real server's bytes, through an httpx transport bound to it."""
    real = httpx.HTTPTransport()
    mapped = url.replace("http://", "https://")

    class Downgrade(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            request.url = request.url.copy_with(scheme="http")
            return real.handle_request(request)

    return download(mapped, dest, transport=Downgrade(), **FAST, **kwargs)


def test_a_truncated_lengthless_body_with_a_checksum_is_deleted(
        http_file_server: StartServer, served, tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root, "--no-length", "--drop-after", "100000")
    dest = tmp_path / "model.onnx"
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        download(server.url("model.onnx"), dest, sha256=sha256(data), **FAST)
    assert not dest.exists() and not part_of(dest).exists()


def test_a_pinned_size_catches_a_lengthless_truncation(http_file_server: StartServer, served,
                                                       tmp_path: Path) -> None:
    root, _ = served
    server = http_file_server(root, "--no-length", "--drop-after", "100000")
    dest = tmp_path / "model.onnx"
    with pytest.raises(ChecksumError, match=f"has 100000 bytes, expected {SIZE}"):
        _download_https_like(server.url("model.onnx"), dest, size=SIZE)
    assert not dest.exists() and not part_of(dest).exists()


def test_allow_unverified_takes_a_lengthless_body_as_it_is(http_file_server: StartServer,
                                                            served, tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root, "--no-length")
    digests = download(server.url("model.onnx"), tmp_path / "m.onnx", allow_unverified=True,
                       **FAST)
    assert digests.size == SIZE and (tmp_path / "m.onnx").read_bytes() == data


def test_plain_http_without_checksum_is_refused_before_any_request(
        http_file_server: StartServer, served, tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    dest = tmp_path / "model.onnx"
    with pytest.raises(UnverifiedDownloadError, match="plain http and no checksum") as info:
        download(server.url("model.onnx"), dest, **FAST)
    assert "model_sha256" in info.value.hint and "--allow-unverified-download" in info.value.hint
    assert server.requests() == [] and not dest.exists()
    # a checksum makes it fine
    assert download(server.url("model.onnx"), dest, md5=md5(data)).size == SIZE


def test_an_old_part_is_not_resumed_without_a_checksum(http_file_server: StartServer, served,
                                                       tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    dest = tmp_path / "model.onnx"
    part_of(dest).write_bytes(b"GARBAGE FROM ANOTHER VERSION" * 100)
    download(server.url("model.onnx"), dest, allow_unverified=True, **FAST)
    assert dest.read_bytes() == data  # no garbage prefix
    assert [r["range"] for r in server.requests()] == [None]


def test_sha384_and_size_are_verified(http_file_server: StartServer, served,
                                      tmp_path: Path) -> None:
    root, data = served
    server = http_file_server(root)
    good = download(server.url("model.onnx"), tmp_path / "a.onnx",
                    sha384=hashlib.sha384(data).hexdigest(), size=SIZE)
    assert good.sha384 == hashlib.sha384(data).hexdigest()
    with pytest.raises(ChecksumError, match="expected sha384"):
        download(server.url("model.onnx"), tmp_path / "b.onnx", sha384="0" * 96)
    assert not (tmp_path / "b.onnx").exists()
