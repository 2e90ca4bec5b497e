"""``cache add``: register a model file or a dataset folder the user already has.

Nothing is copied. A model file is checked against the card's checksum when the card
has one (a mismatch is an error unless ``verify=False``, which registers the file marked
unverified); a dataset folder is checked for the layout its card describes. A path that
does not exist is a usage error (exit 2). Registering a name again replaces its earlier
registration, so a name means one file.
"""

from __future__ import annotations

from pathlib import Path

from mlperf_pilot.assets.cache import AssetCache, CacheEntry
from mlperf_pilot.assets.fetch import verify_file
from mlperf_pilot.assets.models import cache_name
from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.datasets.layouts import read_dataset
from mlperf_pilot.errors import ChecksumError, ConfigError, UnknownPluginError


def register(cache: AssetCache, name: str, path: Path, *, verify: bool = True) -> CacheEntry:
    catalog = load_catalog()
    target = Path(path).expanduser().resolve()
    if not target.exists():
        raise ConfigError(
            f"{target} does not exist", hint="give the path of an existing file or folder"
        )
    model_name, _, format_id = name.partition(":")
    dataset_names = {d.name for d in catalog.datasets}
    if name in dataset_names:
        images = read_dataset(catalog.dataset(name), target)
        meta = {"images": len(images)}
        return cache.add_external("dataset", name, target, meta=meta)
    model_names = {m.name for m in catalog.models}
    if model_name not in model_names:
        raise UnknownPluginError("model or dataset", name, sorted(model_names | dataset_names))
    card = catalog.model(model_name)
    fmt = card.format(format_id or None)
    if not target.is_file():
        raise ConfigError(f"{target} is not a file", hint=f"give the path of {fmt.file_name}")
    meta = {"format": fmt.id, "checksum_verified": False}
    if verify and fmt.has_checksum and not fmt.checksum_is_of_archive:
        try:
            verify_file(target, sha256=fmt.sha256, md5=fmt.md5, name=target.name,
                        delete_on_mismatch=False, sha384=fmt.sha384)
        except ChecksumError as exc:
            raise ChecksumError(
                f"{target.name} is not the official {cache_name(card, fmt)} file "
                f"({fmt.file_name}): {exc.message}",
                hint=f"run it as an unofficial model (open division) with `mlperf-pilot run "
                f"--model {card.name} --model-path {target}`, or register it anyway, marked "
                f"unverified, with `mlperf-pilot cache add --no-verify {name} {target}`",
            ) from exc
        meta["checksum_verified"] = True
    return cache.add_external("model", cache_name(card, fmt), target, meta=meta)
