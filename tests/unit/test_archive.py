"""Archive extraction: round trips for every format, member subsets, unsafe entries refused."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from mlperf_pilot.assets.archive import extract
from mlperf_pilot.errors import AssetError

FILES = {"model/model.onnx": b"onnx bytes", "model/labels.txt": b"cat\ndog\n", "README": b"r"}


def make_tar(path: Path, files: dict[str, bytes], *, mode: str = "w:gz",
             extra: Sequence[tarfile.TarInfo] = ()) -> Path:
    """A tar with the ``extra`` entries (links, folders, devices) first, then ``files``."""
    with tarfile.open(path, mode) as tar:
        for info in extra:
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def relative(paths: list[Path], root: Path) -> list[str]:
    return sorted(p.relative_to(root.resolve()).as_posix() for p in paths)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:xz", "w:bz2"])
def test_tar_round_trip_detected_by_content(tmp_path: Path, mode: str) -> None:
    archive = make_tar(tmp_path / "download.bin", FILES, mode=mode)  # name says nothing
    out = tmp_path / "out"
    paths = extract(archive, out)
    assert relative(paths, out) == sorted(FILES)
    for name, data in FILES.items():
        assert (out / name).read_bytes() == data


def test_zip_round_trip(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", FILES)
    out = tmp_path / "out"
    paths = extract(archive, out)
    assert relative(paths, out) == sorted(FILES)
    assert all(p.read_bytes() == FILES[name] for p, name in
               zip(sorted(paths), sorted(FILES), strict=True))


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_members_subset(tmp_path: Path, kind: str) -> None:
    archive = (make_tar(tmp_path / "a.tgz", FILES) if kind == "tar"
               else make_zip(tmp_path / "a.zip", FILES))
    out = tmp_path / "out"
    assert relative(extract(archive, out, members=["README"]), out) == ["README"]
    assert not (out / "model").exists()
    out2 = tmp_path / "out2"  # a folder name selects what is below it; ./ is ignored
    assert relative(extract(archive, out2, members=["./model"]), out2) == [
        "model/labels.txt", "model/model.onnx"]
    assert not (out2 / "README").exists()


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_missing_members_are_named_and_nothing_is_written(tmp_path: Path, kind: str) -> None:
    archive = (make_tar(tmp_path / "a.tgz", FILES) if kind == "tar"
               else make_zip(tmp_path / "a.zip", FILES))
    out = tmp_path / "out"
    with pytest.raises(AssetError, match=r"does not contain nope\.txt, other"):
        extract(archive, out, members=["README", "nope.txt", "other"])
    assert not out.exists()


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/abs.txt"])
def test_tar_entries_escaping_the_target_are_refused(tmp_path: Path, name: str) -> None:
    archive = make_tar(tmp_path / "bad.tgz", {"fine.txt": b"ok", name: b"x"})
    dest = tmp_path / "deep" / "out"
    with pytest.raises(AssetError) as info:
        extract(archive, dest)
    assert repr(name) in info.value.message and str(archive) in info.value.message
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (dest / "abs.txt").exists()
    assert not (dest / "fine.txt").exists()  # nothing from a refused archive is written


def test_tar_symlink_to_etc_passwd_is_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "link.tgz", {"a.txt": b"a"},
                       extra=[link("passwd", "/etc/passwd")])
    dest = tmp_path / "out"
    with pytest.raises(AssetError, match="'passwd' is a link to an absolute path"):
        extract(archive, dest)
    assert not (dest / "passwd").is_symlink() and not (dest / "a.txt").exists()


@pytest.mark.parametrize("entry", [
    link("up", "../../outside"),  # relative symlink leaving the target
    link("hard", "../outside.txt", tarfile.LNKTYPE),  # hard link to a file outside
])
def test_tar_links_pointing_outside_are_refused(tmp_path: Path, entry: tarfile.TarInfo) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    archive = make_tar(tmp_path / "links.tar", {}, mode="w", extra=[entry])
    dest = tmp_path / "out"
    with pytest.raises(AssetError, match=repr(entry.name)):
        extract(archive, dest)
    assert not (dest / entry.name).exists() and not (dest / entry.name).is_symlink()


def test_tar_writing_through_an_archive_symlink_is_refused(tmp_path: Path) -> None:
    # "here" points inside, but "here/../evil.txt" written through it would land outside
    # once the link exists; the check must not depend on what is on disk beforehand.
    sub = tarfile.TarInfo("sub")
    sub.type = tarfile.DIRTYPE
    archive = make_tar(tmp_path / "chain.tar", {"sub/here/../../evil.txt": b"x"}, mode="w",
                       extra=[sub, link("sub/here", ".")])
    dest = tmp_path / "out"
    with pytest.raises(AssetError, match="goes through the archive's link 'sub/here'"):
        extract(archive, dest)
    assert not (tmp_path / "evil.txt").exists() and not (dest / "sub").exists()


def test_tar_symlink_chain_escape_is_refused(tmp_path: Path) -> None:
    # Before extraction, "a/a/../.." looks like the target folder itself; after "a"
    # (-> ".") exists it is two levels up.
    deep = tmp_path / "x" / "y"
    archive = make_tar(tmp_path / "chain.tar", {}, mode="w",
                       extra=[link("a", "."), link("b", "a/a/../..")])
    with pytest.raises(AssetError, match="'b' goes through the archive's link 'a'"):
        extract(archive, deep / "out")
    assert not (deep / "out").exists()


def test_tar_device_file_is_refused(tmp_path: Path) -> None:
    device = tarfile.TarInfo("null")
    device.type = tarfile.CHRTYPE
    device.devmajor, device.devminor = 1, 3
    archive = make_tar(tmp_path / "dev.tar", {}, mode="w", extra=[device])
    with pytest.raises(AssetError, match="'null' is a device or other special file"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "null").exists()


def test_tar_links_inside_the_target_are_kept(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "ok.tar", {"lib/libx.so.1.2": b"elf"}, mode="w",
                       extra=[link("lib/libx.so.1", "libx.so.1.2"),
                              link("lib/libx.so", "libx.so.1")])
    out = tmp_path / "out"
    paths = extract(archive, out)
    assert relative(paths, out) == ["lib/libx.so", "lib/libx.so.1", "lib/libx.so.1.2"]
    assert (out / "lib" / "libx.so").read_bytes() == b"elf"


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/abs.txt"])
def test_zip_escapes_are_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr(zipfile.ZipInfo(name), "evil")  # ZipInfo keeps the name as given
    dest = tmp_path / "deep" / "out"
    with pytest.raises(AssetError) as info:
        extract(archive, dest)
    assert repr(name) in info.value.message
    assert not (tmp_path / "deep" / "x").exists() and not (tmp_path / "x").exists()
    assert not dest.exists()


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "plain.tar.gz"
    path.write_bytes(b"just bytes, not an archive")
    with pytest.raises(AssetError, match="neither a tar nor a zip"):
        extract(path, tmp_path / "out")


def test_truncated_archive_is_an_asset_error(tmp_path: Path) -> None:
    whole = make_tar(tmp_path / "whole.tgz", {"big.bin": bytes(range(256)) * 4000})
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(AssetError, match=r"cut\.tgz"):
        extract(cut, tmp_path / "out")


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="does not exist"):
        extract(tmp_path / "gone.zip", tmp_path / "out")


BACKSLASH_NAMES = ["..\\..\\..\\x.onnx", "model\\..\\..\\x.onnx", "\\abs\\x.onnx",
                   "C:\\x.onnx", "C:x.onnx", "//server/share/x.onnx", "model\\x.onnx"]


@pytest.mark.parametrize("name", BACKSLASH_NAMES)
def test_tar_backslash_and_windows_absolute_names_are_refused(tmp_path: Path, name: str) -> None:
    archive = make_tar(tmp_path / "a.tar", {"model/ok.onnx": b"ok", name: b"evil"})
    out = tmp_path / "deep" / "a" / "b" / "out"
    with pytest.raises(AssetError, match="refusing to extract") as info:
        extract(archive, out)
    assert repr(name) in info.value.message
    assert not out.exists()  # nothing written, not even the good entry
    assert not list(tmp_path.rglob("x.onnx")) and not list(tmp_path.rglob("*\\*"))


@pytest.mark.parametrize("name", BACKSLASH_NAMES)
def test_zip_backslash_and_windows_absolute_names_are_refused(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "a.zip", {"model/ok.onnx": b"ok", name: b"evil"})
    out = tmp_path / "deep" / "a" / "b" / "out"
    with pytest.raises(AssetError, match="refusing to extract"):
        extract(archive, out)
    assert not out.exists()
    assert not list(tmp_path.rglob("x.onnx")) and not list(tmp_path.rglob("*\\*"))


@pytest.mark.parametrize("target", ["..\\..\\etc\\passwd", "C:\\Windows", "\\etc"])
def test_tar_link_targets_with_backslashes_are_refused(tmp_path: Path, target: str) -> None:
    archive = make_tar(tmp_path / "a.tar", {}, extra=[link("model/l", target)])
    with pytest.raises(AssetError, match="refusing to extract"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
