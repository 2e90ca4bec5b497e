"""Safe archive extraction: tar (plain, gz, xz, bz2) and zip, detected by content.

Every entry of an archive is checked before anything is written. An absolute path, a
``..`` that leaves the target folder, a link pointing outside it, a device or other
special file, or an entry reached through a link of the same archive makes the whole
archive refused with an AssetError that names the entry. Names are read with either
separator: a backslash (which Windows takes as a folder separator and POSIX as a plain
character, so ``..\\..\\x.onnx`` would escape on one and be a strange file name on the
other), a drive letter (``C:``) or a UNC prefix (``//host``) is refused in entry names and
link targets alike. Tar archives are then checked and extracted with the standard
library's ``data`` extraction filter (:func:`tarfile.data_filter`); zip entries are
checked by resolving their paths.
"""

from __future__ import annotations

import posixpath
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from mlperf_pilot.errors import AssetError

try:
    from lzma import LZMAError
except ImportError:  # a Python built without lzma cannot open .tar.xz at all
    LZMAError = OSError  # type: ignore[misc,assignment]

_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error,
                LZMAError, NotImplementedError, RuntimeError)
_UNSAFE_HINT = "the archive is unsafe or damaged; do not use it, get it again from a trusted source"
# the extraction filters' errors (PEP 706); a Python without them (3.11.2, Debian
# bookworm's) still imports this module: _extract_tar refuses tar archives there
_FILTER_REASONS: dict[type[Exception], str] = {
    getattr(tarfile, name): reason for name, reason in (
        ("AbsolutePathError", "has an absolute path"),
        ("OutsideDestinationError", "would be written outside the target folder"),
        ("SpecialFileError", "is a device or other special file"),
        ("AbsoluteLinkError", "is a link to an absolute path"),
        ("LinkOutsideDestinationError", "is a link pointing outside the target folder"),
    ) if hasattr(tarfile, name)
}


def extract(archive: Path, dest: Path, *, members: Iterable[str] | None = None) -> list[Path]:
    """Extract ``archive`` into ``dest`` and return the paths of the extracted files.

    ``members`` limits extraction to those entry names (a directory name selects
    everything below it); AssetError names any that the archive lacks. Nothing is
    written when an entry is unsafe, a member is missing or the archive is unreadable
    before extraction starts.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise AssetError(f"archive {archive} does not exist", hint="check the path")
    wanted = None if members is None else [_normalize(name) for name in members]
    dest = Path(dest).resolve()
    try:
        if tarfile.is_tarfile(archive):
            return _extract_tar(archive, dest, wanted)
        if zipfile.is_zipfile(archive):
            return _extract_zip(archive, dest, wanted)
    except _READ_ERRORS as exc:
        raise AssetError(
            f"cannot extract {archive}: {exc}",
            hint="download the archive again (it may be truncated or damaged), and check "
            "that the target folder is writable",
        ) from exc
    raise AssetError(f"{archive} is neither a tar nor a zip archive",
                     hint="download the file again; it may be truncated or not an archive")


def _normalize(name: str) -> str:
    """An entry name as a plain relative POSIX path (``./a//b/`` → ``a/b``)."""
    normal = posixpath.normpath(name.replace("\\", "/"))
    return "" if normal == "." else normal


def _is_selected(name: str, wanted: Sequence[str] | None) -> bool:
    return wanted is None or any(
        w in ("", name) or name.startswith(w + "/") for w in wanted)


def _raise_if_missing(archive: Path, names: Sequence[str], wanted: Sequence[str] | None) -> None:
    if wanted is None:
        return
    absent = [w for w in wanted if not any(_is_selected(name, [w]) for name in names)]
    if absent:
        raise AssetError(f"{archive.name} does not contain {', '.join(absent)}",
                         hint="check the member names (list them with `tar tf` / `unzip -l`)")


def _name_problem(name: str) -> str | None:
    """Why an entry name (or link target) is unsafe read with either separator, or None."""
    posix = name.replace("\\", "/")
    if posix.startswith("/"):
        return "has an absolute path"
    if len(posix) > 1 and posix[0].isalpha() and posix[1] == ":":
        return "has a Windows drive path"
    normal = posixpath.normpath(posix)
    if normal == ".." or normal.startswith("../"):
        return "would be written outside the target folder"
    if "\\" in name:
        return "uses a backslash, which Windows reads as a folder separator"
    return None


def _refuse(archive: Path, entry: str, reason: str) -> AssetError:
    return AssetError(f"refusing to extract {archive}: entry {entry!r} {reason}",
                      hint=_UNSAFE_HINT)


def _extract_tar(archive: Path, dest: Path, wanted: Sequence[str] | None) -> list[Path]:
    if not hasattr(tarfile, "data_filter"):
        raise AssetError(
            f"this Python ({sys.version.split()[0]}) lacks tar extraction filters, so "
            f"{archive.name} cannot be extracted safely",
            hint="use Python 3.10.12, 3.11.4 or newer",
        )
    with tarfile.open(archive) as tar:
        entries = tar.getmembers()
        _check_tar_entries(archive, dest, entries)
        chosen = [m for m in entries if _is_selected(_normalize(m.name), wanted)]
        _raise_if_missing(archive, [_normalize(m.name) for m in entries], wanted)
        dest.mkdir(parents=True, exist_ok=True)
        tar.extractall(dest, members=chosen, filter="data")
    return [dest / _normalize(m.name) for m in chosen if not m.isdir()]


def _check_tar_entries(archive: Path, dest: Path, entries: Sequence[tarfile.TarInfo]) -> None:
    """Refuse the archive if any entry is unsafe, before anything is written."""
    links = {_normalize(m.name) for m in entries if m.issym()}
    for member in entries:
        reason = _name_problem(member.name)  # before data_filter, which strips a leading /
        if reason is not None:
            raise _refuse(archive, member.name, reason)
        if (member.issym() or member.islnk()) and (
                "\\" in member.linkname or _name_problem(member.linkname) == "has a Windows "
                "drive path"):
            raise _refuse(archive, member.name, f"is a link to {member.linkname!r}, a "
                          "Windows path")
        try:
            tarfile.data_filter(member, str(dest))
        except tarfile.FilterError as exc:
            reason = _FILTER_REASONS.get(type(exc), "is not allowed by the data filter")
            raise _refuse(archive, member.name, reason) from exc
        through = _archive_link_on_path(member, links)
        if through is not None:
            raise _refuse(archive, member.name, f"goes through the archive's link {through!r}")


def _archive_link_on_path(member: tarfile.TarInfo, links: set[str]) -> str | None:
    """A symlink of the archive that ``member``'s path or link target passes through.

    The data filter checks each entry against the disk as it is before extraction, so
    it cannot see links that earlier entries of the same archive will create.
    """
    name = member.name.replace("\\", "/").split("/")  # raw: "a/../b" must pass "a"
    parent = _first_link_on(name[:-1], links)
    if parent is not None:
        return parent
    if member.issym():
        return _first_link_on(name[:-1] + member.linkname.split("/")[:-1], links)
    if member.islnk():  # a hard link to a symlink would link the symlink's target
        return _first_link_on(member.linkname.split("/"), links)
    return None


def _first_link_on(components: list[str], links: set[str]) -> str | None:
    current: list[str] = []
    for part in components:
        if part in ("", "."):
            continue
        if part == "..":
            if current:
                current.pop()
            continue
        current.append(part)
        if "/".join(current) in links:
            return "/".join(current)
    return None


def _extract_zip(archive: Path, dest: Path, wanted: Sequence[str] | None) -> list[Path]:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            reason = _zip_entry_problem(info.filename, dest)
            if reason is not None:
                raise _refuse(archive, info.filename, reason)
        chosen = [i for i in infos if _is_selected(_normalize(i.filename), wanted)]
        _raise_if_missing(archive, [_normalize(i.filename) for i in infos], wanted)
        dest.mkdir(parents=True, exist_ok=True)
        zf.extractall(dest, members=chosen)
    return [dest / _normalize(i.filename) for i in chosen if not i.is_dir()]


def _zip_entry_problem(name: str, dest: Path) -> str | None:
    """Why a zip entry may not be extracted into ``dest``, or None when it may."""
    problem = _name_problem(name)
    if problem is not None:
        return problem
    if ".." in name.split("/"):
        return "has a '..' component"
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        return "would be written outside the target folder"
    return None


__all__ = ["extract"]
