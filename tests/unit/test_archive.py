from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from mlperf_pilot.assets.archive import extract
from mlperf_pilot.errors import AssetError


def _tar(path: Path, entries: dict[str, bytes], symlink: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type = tarfile.SYMTYPE
            info.linkname = symlink[1]
            tar.addfile(info)
    return path


def test_tar_and_zip_round_trip(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tgz", {"dir/model.pb": b"pb", "readme": b"r"})
    out = extract(archive, tmp_path / "t")
    assert sorted(p.relative_to(tmp_path / "t").as_posix() for p in out) == [
        "dir/model.pb", "readme"]
    assert (tmp_path / "t/dir/model.pb").read_bytes() == b"pb"
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("x/y.txt", "hello")
    assert [p.name for p in extract(tmp_path / "a.zip", tmp_path / "z")] == ["y.txt"]


def test_members_subset_and_missing_member(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tgz", {"a": b"1", "b": b"2"})
    out = extract(archive, tmp_path / "t", members=["b"])
    assert [p.name for p in out] == ["b"] and not (tmp_path / "t/a").exists()
    with pytest.raises(AssetError, match="does not contain c"):
        extract(archive, tmp_path / "t2", members=["c"])


@pytest.mark.parametrize("name", ["../evil.txt", "/abs.txt", "ok/../../evil2.txt"])
def test_tar_entries_escaping_the_target_are_refused(tmp_path: Path, name: str) -> None:
    archive = _tar(tmp_path / "bad.tgz", {"fine.txt": b"ok", name: b"x"})
    dest = tmp_path / "deep" / "out"
    with pytest.raises(AssetError) as info:
        extract(archive, dest)
    assert name in info.value.message
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (dest / "fine.txt").exists()  # nothing from a refused archive is written


def test_tar_symlink_out_of_the_target_is_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "link.tgz", {}, symlink=("passwd", "/etc/passwd"))
    with pytest.raises(AssetError, match="passwd"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "passwd").exists()


def test_zip_escape_is_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("../x.txt", "evil")
    with pytest.raises(AssetError, match=r"\.\./x\.txt"):
        extract(tmp_path / "bad.zip", tmp_path / "out")
    assert not (tmp_path / "x.txt").exists()


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "plain.bin"
    path.write_bytes(b"just bytes")
    with pytest.raises(AssetError, match="neither a tar nor a zip"):
        extract(path, tmp_path / "out")
