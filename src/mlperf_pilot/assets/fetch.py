"""Downloads with resume, retries and checksum verification.

A download streams into ``<dest>.part`` while hashing. If a ``.part`` is already there
(an interrupted earlier run), it resumes with an HTTP Range request; a server that
ignores Range answers 200 and the download restarts. Transient failures (connection
errors, a body cut short, 5xx, 429) are retried with exponential backoff, each retry
resuming from what has arrived. When a checksum is given and does not match, the file
is deleted and AssetError names the expected and the actual hash. Success renames the
``.part`` into place atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import httpx

from mlperf_pilot.errors import AssetError
from mlperf_pilot.progress import NULL_PROGRESS, Progress, ProgressTask

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_RETRY_STATUS = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Digests:
    sha256: str
    md5: str
    size: int


class _Hasher:
    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.md5.update(data)
        self.size += len(data)

    def digests(self) -> Digests:
        return Digests(self.sha256.hexdigest(), self.md5.hexdigest(), self.size)


def _hash_file_into(hasher: _Hasher, path: Path) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)


def file_digests(path: Path) -> Digests:
    hasher = _Hasher()
    _hash_file_into(hasher, Path(path))
    return hasher.digests()


def _check(digests: Digests, path: Path, sha256: str | None, md5: str | None,
           name: str | None, delete: bool) -> None:
    for algorithm, expected, actual in (("sha256", sha256, digests.sha256),
                                        ("md5", md5, digests.md5)):
        if expected and expected.strip().lower() != actual:
            if delete:
                path.unlink(missing_ok=True)
            raise AssetError(
                f"checksum mismatch for {name or path.name}: expected {algorithm} "
                f"{expected.strip().lower()}, got {actual}",
                hint="the file is corrupt or not the one the catalog names; download it "
                "again or use a good copy",
            )


def verify_file(path: Path, *, sha256: str | None = None, md5: str | None = None,
                name: str | None = None, delete_on_mismatch: bool = True) -> Digests:
    """Hash ``path`` and compare with the given checksums (AssetError on mismatch)."""
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path} does not exist", hint="check the path")
    digests = file_digests(path)
    _check(digests, path, sha256, md5, name, delete_on_mismatch)
    return digests


class _Retryable(Exception):
    """A failure worth another attempt."""


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
) -> Digests:
    """Fetch ``url`` into ``dest`` (resuming a ``.part``); returns the file's digests."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    label = description or f"downloading {dest.name}"
    if urllib.parse.urlsplit(url).scheme == "file":
        return _copy_file_url(url, dest, part, sha256, md5, progress, label)
    attempt = 0
    with progress.task(label, unit="bytes") as task, httpx.Client(
        transport=transport, follow_redirects=True, timeout=timeout_s
    ) as client:
        while True:
            try:
                hasher = _fetch_into(client, url, part, task)
                break
            except _Retryable as exc:
                attempt += 1
                if attempt > retries:
                    raise AssetError(
                        f"download of {url} failed after {retries} retries: {exc}",
                        hint="check the network or pass a local copy of the file",
                    ) from exc
                delay = backoff_s * (2 ** (attempt - 1))
                log.debug("retrying %s in %.2fs after: %s", url, delay, exc)
                time.sleep(delay)
    digests = hasher.digests()
    _check(digests, part, sha256, md5, dest.name, delete=True)
    os.replace(part, dest)
    return digests


def _fetch_into(client: httpx.Client, url: str, part: Path, task: ProgressTask) -> _Hasher:
    hasher = _Hasher()
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416 and offset:
                _hash_file_into(hasher, part)  # the part is already whole
                task.update(completed=offset, total=offset)
                return hasher
            if response.status_code in _RETRY_STATUS:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise AssetError(
                    f"download of {url} failed: HTTP {response.status_code}",
                    hint="check the URL (the file may have moved) or pass a local copy",
                )
            resumed = response.status_code == 206 and offset > 0
            if resumed:
                _hash_file_into(hasher, part)
            length = response.headers.get("Content-Length")
            total = (int(length) + (offset if resumed else 0)) if length else None
            task.update(completed=hasher.size, total=total)
            with part.open("ab" if resumed else "wb") as handle:
                for chunk in response.iter_bytes():  # as it arrives: a cut keeps it
                    handle.write(chunk)
                    hasher.update(chunk)
                    task.advance(len(chunk))
            if total is not None and hasher.size < total:
                raise _Retryable(f"connection closed after {hasher.size} of {total} bytes")
    except httpx.TransportError as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
    return hasher


def _copy_file_url(url: str, dest: Path, part: Path, sha256: str | None, md5: str | None,
                   progress: Progress, label: str) -> Digests:
    source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if not source.is_file():
        raise AssetError(f"{url} does not exist", hint="check the mirror path")
    hasher = _Hasher()
    with progress.task(label, total=source.stat().st_size, unit="bytes") as task, \
            source.open("rb") as src, part.open("wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            hasher.update(chunk)
            task.advance(len(chunk))
    digests = hasher.digests()
    _check(digests, part, sha256, md5, dest.name, delete=True)
    os.replace(part, dest)
    return digests


__all__ = ["Digests", "download", "file_digests", "verify_file"]
