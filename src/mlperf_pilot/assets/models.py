"""Find the model file a run needs.

In order: ``--model-path`` (used as given), a file registered with ``cache add``, a
cached download or build, then a fresh build (demo models) or a download from the
card's URLs (mirrors tried in order) verified against the card's checksum.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from mlperf_pilot.assets.archive import extract
from mlperf_pilot.assets.builders import get_builder
from mlperf_pilot.assets.cache import AssetCache, BuildResult
from mlperf_pilot.assets.fetch import download, file_digests
from mlperf_pilot.catalog.cards import ModelCard, ModelFormat
from mlperf_pilot.errors import AssetError, ChecksumError, ConfigError, UnverifiedDownloadError
from mlperf_pilot.progress import NULL_PROGRESS, Progress

_ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".zip", ".tar.xz", ".tar.bz2")


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    source: str
    from_cache: bool
    # whether the file was checked against a checksum the catalog pins (or was built or
    # converted here from such a file): False for ``--model-path``, ``cache add
    # --no-verify``, a format without a pinned checksum, an unverified download
    verified: bool = False


def cache_name(card: ModelCard, fmt: ModelFormat) -> str:
    """The name a model file has in the cache (``cache add`` uses the same)."""
    return card.name if fmt.id == card.default_format else f"{card.name}:{fmt.id}"


def resolve_model(
    card: ModelCard, fmt: ModelFormat, model_path: Path | None, cache: AssetCache, *,
    transport: httpx.BaseTransport | None = None, progress: Progress = NULL_PROGRESS,
    sha256: str | None = None, allow_unverified: bool = False,
) -> ResolvedModel:
    """The model file of ``fmt``. ``sha256``: the user's checksum of what the format's
    URLs serve (for a format the catalog pins none); ``allow_unverified``: download
    without any checksum (see :func:`download`)."""
    if model_path is not None:
        path = Path(model_path).expanduser().resolve()
        if not path.exists():
            raise ConfigError(
                f"model file {path} does not exist",
                hint="check --model-path, or leave it out to use the catalog's copy",
            )
        return ResolvedModel(path=path, source=f"--model-path {model_path}", from_cache=False,
                             verified=False)
    name = cache_name(card, fmt)
    registered = cache.find_external("model", name)
    if registered is not None:
        return ResolvedModel(registered.target, "registered with `cache add`", True,
                             verified=bool(registered.meta.get("checksum_verified")))
    if fmt.convert is not None:
        return _convert(card, fmt, name, cache, transport, progress)
    if fmt.build is not None:
        return _build(card, fmt, name, cache, progress)
    if fmt.urls:
        if sha256 and not fmt.has_checksum:
            fmt = fmt.model_copy(update={"sha256": sha256.strip().lower()})
        return _download(fmt, name, cache, transport, progress, allow_unverified)
    raise AssetError(
        f"the catalog has no download URL for {card.name} ({fmt.id})",
        hint=f"get {fmt.file_name} yourself and pass --model-path, or "
        f"`mlperf-pilot cache add {name} PATH`",
    )


def _build(
    card: ModelCard, fmt: ModelFormat, name: str, cache: AssetCache, progress: Progress
) -> ResolvedModel:
    assert fmt.build is not None
    builder = get_builder(fmt.build.builder)
    recipe = {"build": fmt.build.model_dump(mode="json"), "file": fmt.file_name,
              "inputs": [i.model_dump(mode="json") for i in fmt.inputs],
              "outputs": list(fmt.outputs)}

    def build(folder: Path) -> BuildResult:
        with progress.task(f"building {card.name} ({fmt.build.builder})"):  # type: ignore[union-attr]
            return builder(fmt, folder)

    entry, built = cache.get_or_build("model", name, recipe, build)
    # built here from the catalog's recipe and checked against its source framework
    return ResolvedModel(entry.target, entry.source, from_cache=not built, verified=True)


def _convert(
    card: ModelCard, fmt: ModelFormat, name: str, cache: AssetCache,
    transport: httpx.BaseTransport | None, progress: Progress,
) -> ResolvedModel:
    """Resolve the source format (download, build or convert), then convert it once."""
    from mlperf_pilot.assets.convert import REVISION, converter_version, get_converter

    assert fmt.convert is not None
    source_fmt = card.format(fmt.convert.source)
    source = resolve_model(card, source_fmt, None, cache, transport=transport,
                           progress=progress)
    # the source's content, not only its path: a rebuilt or re-registered source is a
    # new conversion
    content = file_digests(source.path).sha256 if source.path.is_file() else None
    recipe = {"convert": fmt.convert.model_dump(mode="json"), "file": fmt.file_name,
              "source": str(source.path), "source_sha256": content,
              "tool_version": converter_version(fmt.convert.tool),
              "revision": REVISION[fmt.convert.tool]}
    converter = get_converter(fmt.convert.tool)

    def build(folder: Path) -> BuildResult:
        with progress.task(f"converting {card.name} {source_fmt.id} → {fmt.id}"):
            return converter(fmt, source.path, folder)

    entry, built = cache.get_or_build("model", name, recipe, build)
    # checked against its source: as verified as the source is
    return ResolvedModel(entry.target, entry.source, from_cache=not built,
                         verified=source.verified)


def _download(
    fmt: ModelFormat, name: str, cache: AssetCache,
    transport: httpx.BaseTransport | None, progress: Progress, allow_unverified: bool = False,
) -> ResolvedModel:
    recipe = {"urls": list(fmt.urls), "sha256": fmt.sha256, "md5": fmt.md5,
              "file": fmt.file_name}
    if fmt.sha384 or fmt.size_bytes:
        recipe.update(sha384=fmt.sha384, size=fmt.size_bytes)
    from mlperf_pilot.assets.cache import recipe_key

    part_dir = cache.download_dir(recipe_key(recipe))

    def build(folder: Path) -> BuildResult:
        errors: list[str] = []
        for url in fmt.urls:
            download_name = Path(httpx.URL(url).path).name or fmt.file_name
            is_archive = download_name.endswith(_ARCHIVE_SUFFIXES)
            target = part_dir / (download_name if is_archive else fmt.file_name)
            try:
                digests = download(
                    url, target, sha256=fmt.sha256, md5=fmt.md5, transport=transport,
                    progress=progress, description=f"downloading {download_name}",
                    sha384=fmt.sha384, size=fmt.size_bytes,
                    allow_unverified=allow_unverified,
                )
            except (ChecksumError, UnverifiedDownloadError):
                raise  # a wrong file, or a refusal to decide on: said, not skipped
            except AssetError as exc:
                errors.append(exc.message)
                continue
            if is_archive:
                _extract_model(target, fmt.file_name, folder)
                target.unlink()
            else:
                target.replace(folder / fmt.file_name)
            return BuildResult(
                main=fmt.file_name, source=url,
                meta={"url": url, "sha256": digests.sha256, "md5": digests.md5,
                      "checksum_verified": fmt.has_checksum},
            )
        raise AssetError(
            f"could not download {fmt.file_name}: {'; '.join(errors)}",
            hint=f"download it yourself and pass --model-path, or "
            f"`mlperf-pilot cache add {name} PATH`",
        )

    entry, built = cache.get_or_build("model", name, recipe, build)
    verified = bool(entry.meta.get("checksum_verified", fmt.has_checksum))
    return ResolvedModel(entry.target, entry.source, from_cache=not built, verified=verified)


def _extract_model(archive: Path, file_name: str, folder: Path) -> None:
    """Pull the one model file out of a downloaded archive."""
    staging = folder / ".extract"
    extracted = extract(archive, staging)
    matches = [p for p in extracted if p.name == file_name]
    if not matches:
        raise AssetError(f"{archive.name} does not contain {file_name}")
    matches[0].replace(folder / file_name)
    import shutil

    shutil.rmtree(staging)
