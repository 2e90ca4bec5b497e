"""Downloads with resume, retries and checksum verification.

:func:`download` streams a URL into ``<dest>.part`` and hashes the bytes as they are
written, so a large file is read from the network once and never re-read from disk.
If a ``.part`` is already there (an interrupted earlier run or attempt), it resumes
with ``Range: bytes=N-``: a ``206`` answer is appended, a ``200`` (the server ignored
Range) restarts from zero, and a ``416`` means the part is probably complete and is
verified as it is. Transient failures (connection errors, a body cut short, HTTP 5xx
and 429) are retried with exponential backoff, each retry resuming from what has
arrived; other HTTP errors fail at once. When a checksum is given and does not match,
the ``.part`` is deleted and :class:`~mlperf_pilot.errors.ChecksumError` names the
expected and the actual hash (or size). A download nothing could verify is refused with
:class:`~mlperf_pilot.errors.UnverifiedDownloadError`. Success renames the ``.part``
into place atomically. ``file://`` URLs are copied with the same hashing and
verification, which makes local mirrors easy.

:func:`verify_file` and :func:`file_digests` check files that are already on disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from mlperf_pilot.errors import AssetError, ChecksumError, UnverifiedDownloadError
from mlperf_pilot.progress import NULL_PROGRESS, Progress, ProgressTask

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20  # hashing and copying files on disk
WRITE_CHUNK = 256 << 10  # network bodies are written, hashed and reported in pieces this big
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", re.IGNORECASE)
_UNVERIFIED_HINT = ("pass the file's checksum (--set model_sha256=HEX), or download it "
                    "yourself and pass --model-path, or accept the risk with "
                    "--allow-unverified-download")
_MISMATCH_HINT = ("the file is damaged or is not the expected one; download it again "
                  "(or from another mirror), or pass a good local copy")


@dataclass(frozen=True)
class Digests:
    """The SHA-256, MD5 (and SHA-384) hex digests and the size in bytes of a file."""

    sha256: str
    md5: str
    size: int
    sha384: str = ""


class _Hasher:
    """SHA-256, MD5 and a byte count, fed in one pass."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha384 = hashlib.sha384()
        self.size = 0

    def update(self, data: bytes | bytearray) -> None:
        self._sha256.update(data)
        self._md5.update(data)
        self._sha384.update(data)
        self.size += len(data)

    def digests(self) -> Digests:
        return Digests(self._sha256.hexdigest(), self._md5.hexdigest(), self.size,
                       self._sha384.hexdigest())


def _hash_file(path: Path) -> _Hasher:
    hasher = _Hasher()
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            hasher.update(chunk)
    return hasher


def file_digests(path: Path) -> Digests:
    """SHA-256, MD5 and size of ``path``, read once in 1 MiB chunks."""
    return _hash_file(Path(path)).digests()


def _raise_on_mismatch(
    digests: Digests, path: Path, *, sha256: str | None, md5: str | None,
    name: str | None, delete: bool, sha384: str | None = None, size: int | None = None,
) -> None:
    if size is not None and digests.size != size:
        if delete:
            path.unlink(missing_ok=True)
        raise ChecksumError(
            f"{name or path.name} has {digests.size} bytes, expected {size}",
            hint=_MISMATCH_HINT,
        )
    for algorithm, expected, actual in (("sha256", sha256, digests.sha256),
                                        ("sha384", sha384, digests.sha384),
                                        ("md5", md5, digests.md5)):
        if not expected:
            continue
        wanted = expected.strip().lower()
        if wanted != actual.lower():
            if delete:
                path.unlink(missing_ok=True)
            raise ChecksumError(
                f"checksum mismatch for {name or path.name}: expected {algorithm} {wanted}, "
                f"got {actual}",
                hint=_MISMATCH_HINT,
            )


def verify_file(
    path: Path, *, sha256: str | None = None, md5: str | None = None,
    name: str | None = None, delete_on_mismatch: bool = True, sha384: str | None = None,
) -> Digests:
    """Hash ``path`` and compare with the checksums given (case-insensitive).

    Raises AssetError when the file is missing, ChecksumError when a checksum does not
    match; the file is deleted on a mismatch when ``delete_on_mismatch``. ``name`` is
    how the message calls the file (its file name by default).
    """
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path} does not exist or is not a file", hint="check the path")
    try:
        digests = file_digests(path)
    except OSError as exc:
        raise AssetError(f"cannot read {path}: {exc.strerror or exc}",
                         hint="check the file's permissions") from exc
    _raise_on_mismatch(digests, path, sha256=sha256, md5=md5, name=name,
                       delete=delete_on_mismatch, sha384=sha384)
    return digests


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    transport: httpx.BaseTransport | None = None,
    retries: int = 5,
    backoff_s: float = 0.5,
    timeout_s: float = 60.0,
    progress: Progress = NULL_PROGRESS,
    description: str | None = None,
    sha384: str | None = None,
    size: int | None = None,
    allow_unverified: bool = False,
) -> Digests:
    """Fetch ``url`` (http, https or file) into ``dest``; returns the file's digests.

    Resumes an existing ``<dest>.part``, retries transient failures ``retries`` times
    (waiting ``backoff_s``, then twice as long each time) and verifies ``sha256`` /
    ``sha384`` / ``md5`` and ``size`` when given. Raises AssetError when the file cannot
    be had, ChecksumError when it is wrong.

    Without a checksum nothing can prove the bytes right, so: a plain ``http://`` URL
    is refused, a ``.part`` left by an earlier run is not resumed (its bytes may belong
    to another version of the file), and a response that does not say how long it is
    (no Content-Length, not chunked: a connection closed early would look complete) is
    refused, unless ``allow_unverified``.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    label = description or f"downloading {dest.name}"
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise AssetError(f"cannot download {url}: unsupported URL scheme {scheme!r}",
                         hint="use an http://, https:// or file:// URL")
    verified = bool(sha256 or sha384 or md5)
    if scheme == "http" and not verified and not allow_unverified:
        raise UnverifiedDownloadError(
            f"refusing to download {url}: plain http and no checksum to verify it",
            hint=_UNVERIFIED_HINT,
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not verified:
            part.unlink(missing_ok=True)  # an old part cannot be checked: start over
        if scheme == "file":
            digests = _copy_file_url(url, part, progress, label)
        else:
            with progress.task(label, unit="bytes") as task, httpx.Client(
                transport=transport, follow_redirects=True, timeout=timeout_s
            ) as client:
                digests = _fetch_with_retries(client, url, _PartFile(part), task,
                                              retries, backoff_s,
                                              need_length=not verified and size is None
                                              and not allow_unverified)
        _raise_on_mismatch(digests, part, sha256=sha256, md5=md5, name=dest.name,
                           delete=True, sha384=sha384, size=size)
        os.replace(part, dest)
    except OSError as exc:
        raise AssetError(
            f"cannot download {url} to {dest}: {exc.strerror or exc}",
            hint=f"check free disk space and the permissions of {dest.parent}",
        ) from exc
    return digests


class _Retryable(Exception):
    """A failure worth another attempt (what arrived so far is kept)."""


class _PartFile:
    """The ``.part`` file, with a running hash of the bytes it holds when known.

    The hash carries over from one attempt to the next, so a retry after a dropped
    connection does not read the part again; only a ``.part`` left by an earlier run
    is hashed from disk, once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._hasher: _Hasher | None = None

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def hasher(self) -> _Hasher:
        """The hash of the bytes on disk now."""
        if self._hasher is None or self._hasher.size != self.size():
            self._hasher = _hash_file(self.path) if self.path.exists() else _Hasher()
        return self._hasher

    def open(self, *, append: bool) -> tuple[BinaryIO, _Hasher]:
        """Open for writing, appending to what is there or starting from zero."""
        if append:
            hasher = self.hasher()
            return self.path.open("ab"), hasher
        self._hasher = _Hasher()
        return self.path.open("wb"), self._hasher

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self._hasher = None


def _fetch_with_retries(
    client: httpx.Client, url: str, part: _PartFile, task: ProgressTask,
    retries: int, backoff_s: float, *, need_length: bool = False,
) -> Digests:
    attempt = 0
    while True:
        try:
            return _fetch_once(client, url, part, task, need_length)
        except _Retryable as exc:
            if attempt >= retries:
                raise AssetError(
                    f"download of {url} failed after {retries} retries: {exc}",
                    hint="check the network and the URL, try again later (the download "
                    "resumes), or pass a local copy of the file",
                ) from exc
            delay = backoff_s * 2**attempt
            attempt += 1
            log.debug("retry %d/%d of %s in %.2fs after: %s", attempt, retries, url, delay, exc)
            time.sleep(delay)


def _fetch_once(client: httpx.Client, url: str, part: _PartFile, task: ProgressTask,
                need_length: bool = False) -> Digests:
    offset = part.size()
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416 and offset:
                return _accept_complete_part(response, part, task)
            _raise_for_status(url, response)
            if need_length and not _is_framed(response):
                part.discard()
                raise UnverifiedDownloadError(
                    f"refusing {url}: the server does not say how long the file is and "
                    "no checksum is known, so a connection closed early would look like "
                    "a complete download",
                    hint=_UNVERIFIED_HINT,
                )
            return _receive_body(response, part, offset, task)
    except httpx.UnsupportedProtocol as exc:
        raise AssetError(f"cannot download {url}: {exc}", hint="check the URL") from exc
    except httpx.TransportError as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise AssetError(f"download of {url} failed: {exc}",
                         hint="check the URL, or pass a local copy of the file") from exc


def _raise_for_status(url: str, response: httpx.Response) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        raise _Retryable(f"HTTP {status} {response.reason_phrase}".rstrip())
    if status not in (200, 206):
        raise AssetError(
            f"download of {url} failed: HTTP {status} {response.reason_phrase}".rstrip(),
            hint="check the URL (the file may have moved), or pass a local copy of the file",
        )


def _content_range(response: httpx.Response) -> tuple[int | None, int | None]:
    """``(first byte, full size)`` from Content-Range; None where absent or ``*``."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if match is None:
        return None, None
    first, full = match.groups()
    return (int(first) if first else None), (int(full) if full and full != "*" else None)


def _is_framed(response: httpx.Response) -> bool:
    """Whether the response's end is known: a Content-Length of the identity body, or
    chunked framing (whose last chunk h11 requires)."""
    if "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        return True
    return not _is_encoded(response) and response.headers.get("Content-Length",
                                                              "").isdigit()


def _is_encoded(response: httpx.Response) -> bool:
    return response.headers.get("Content-Encoding", "identity").strip().lower() not in (
        "", "identity")


def _accept_complete_part(response: httpx.Response, part: _PartFile,
                          task: ProgressTask) -> Digests:
    """A 416 to our Range: the part is whole unless the server says the file differs."""
    offset = part.size()
    _, full = _content_range(response)
    if full is not None and full != offset:
        part.discard()
        raise _Retryable(f"partial file has {offset} bytes but the file has {full}")
    log.debug("%s is already complete (%d bytes)", part.path, offset)
    hasher = part.hasher()
    task.update(completed=hasher.size, total=hasher.size)
    return hasher.digests()


def _receive_body(response: httpx.Response, part: _PartFile, offset: int,
                  task: ProgressTask) -> Digests:
    resumed = response.status_code == 206 and offset > 0
    if resumed:
        first, _ = _content_range(response)
        if first is not None and first != offset:
            part.discard()
            raise _Retryable(f"server resumed at byte {first}, not {offset}; restarting")
        if _is_encoded(response):  # offsets of a compressed body do not match the file's
            part.discard()
            raise _Retryable("server compressed the resumed part; restarting")
    elif offset:
        log.debug("server ignored Range for %s; restarting from zero", response.url)
    total = _expected_total(response, offset if resumed else 0)
    handle, hasher = part.open(append=resumed)
    task.update(completed=hasher.size, total=total)
    with handle:
        _stream_into(response, handle, hasher, task)
    if total is not None and hasher.size < total:
        raise _Retryable(f"connection closed after {hasher.size} of {total} bytes")
    return hasher.digests()


def _expected_total(response: httpx.Response, start: int) -> int | None:
    """The size of the whole file once this response is complete, when known."""
    if _is_encoded(response):
        return None  # Content-Length counts encoded bytes
    if response.status_code == 206:
        _, full = _content_range(response)
        if full is not None:
            return full
    length = response.headers.get("Content-Length", "")
    return start + int(length) if length.isdigit() else None


def _stream_into(response: httpx.Response, handle: BinaryIO, hasher: _Hasher,
                 task: ProgressTask) -> None:
    """Write, hash and report the body in pieces of at least WRITE_CHUNK bytes.

    What has arrived is written even when the connection breaks, so a retry resumes
    from the last byte received.
    """
    buffer = bytearray()
    try:
        for piece in response.iter_bytes():  # as it arrives; identity unless compressed
            buffer += piece
            if len(buffer) >= WRITE_CHUNK:
                _write_piece(buffer, handle, hasher, task)
    finally:
        if buffer:
            _write_piece(buffer, handle, hasher, task)


def _write_piece(buffer: bytearray, handle: BinaryIO, hasher: _Hasher,
                 task: ProgressTask) -> None:
    handle.write(buffer)
    hasher.update(buffer)
    task.advance(len(buffer))
    buffer.clear()


def _file_url_path(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise AssetError(f"cannot download {url}: file:// URLs on another host are not "
                         "supported", hint="mount the share and use a local path")
    return Path(urllib.request.url2pathname(parts.path))


def _copy_file_url(url: str, part: Path, progress: Progress, label: str) -> Digests:
    source = _file_url_path(url)
    if not source.is_file():
        raise AssetError(f"{url} does not exist", hint="check the mirror path")
    hasher = _Hasher()
    with progress.task(label, total=source.stat().st_size, unit="bytes") as task, \
            source.open("rb") as src, part.open("wb") as out:
        while chunk := src.read(READ_CHUNK):
            out.write(chunk)
            hasher.update(chunk)
            task.advance(len(chunk))
    return hasher.digests()


__all__ = ["Digests", "download", "file_digests", "verify_file"]
