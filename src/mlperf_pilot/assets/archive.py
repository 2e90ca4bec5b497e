"""Safe archive extraction (tar, tar.gz/xz/bz2, zip).

Every entry is checked before anything is written: an absolute path, a ``..``
component, a link pointing outside the target folder or a device file makes the whole
archive refused with an AssetError naming the entry. Tar archives go through the
standard library's ``data`` extraction filter.
"""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from mlperf_pilot.errors import AssetError


def _inside(dest: Path, name: str) -> bool:
    target = (dest / name).resolve()
    return target == dest or dest in target.parents


def extract(archive: Path, dest: Path, *, members: Iterable[str] | None = None) -> list[Path]:
    """Extract ``archive`` (or only ``members``) into ``dest``; returns the files."""
    archive = Path(archive)
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    wanted = set(members) if members is not None else None
    if zipfile.is_zipfile(archive):
        return _extract_zip(archive, dest, wanted)
    if tarfile.is_tarfile(archive):
        return _extract_tar(archive, dest, wanted)
    raise AssetError(f"{archive} is neither a tar nor a zip archive",
                     hint="download the file again; it may be truncated")


def _missing(wanted: set[str] | None, names: Iterable[str], archive: Path) -> None:
    if wanted is None:
        return
    absent = sorted(wanted - set(names))
    if absent:
        raise AssetError(f"{archive.name} does not contain {', '.join(absent)}")


def _extract_tar(archive: Path, dest: Path, wanted: set[str] | None) -> list[Path]:
    try:
        with tarfile.open(archive) as tar:
            chosen = [m for m in tar.getmembers() if wanted is None or m.name in wanted]
            _missing(wanted, (m.name for m in chosen), archive)
            for member in chosen:  # refuse the whole archive before writing anything
                try:
                    if member.name.startswith(("/", "\\")):
                        raise tarfile.AbsolutePathError(member)
                    tarfile.data_filter(member, str(dest))
                except tarfile.FilterError as exc:
                    raise AssetError(
                        f"{archive.name}: entry {member.name!r} would be written outside "
                        f"the target folder or is not a plain file ({type(exc).__name__})",
                        hint="the archive is unsafe; do not use it",
                    ) from exc
            tar.extractall(dest, members=chosen, filter="data")
            return [dest / m.name for m in chosen if m.isfile()]
    except tarfile.TarError as exc:
        raise AssetError(f"{archive} cannot be read as a tar archive: {exc}") from exc


def _extract_zip(archive: Path, dest: Path, wanted: set[str] | None) -> list[Path]:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if wanted is None or i.filename in wanted]
            _missing(wanted, (i.filename for i in infos), archive)
            for info in infos:
                name = info.filename
                if name.startswith(("/", "\\")) or ".." in Path(name).parts or \
                        not _inside(dest, name):
                    raise AssetError(
                        f"{archive.name}: entry {name!r} would be written outside the "
                        "target folder",
                        hint="the archive is unsafe; do not use it",
                    )
            zf.extractall(dest, members=infos)
            return [dest / i.filename for i in infos if not i.is_dir()]
    except zipfile.BadZipFile as exc:
        raise AssetError(f"{archive} cannot be read as a zip archive: {exc}") from exc
