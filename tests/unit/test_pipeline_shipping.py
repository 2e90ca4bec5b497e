"""A run step's results in its log (pipelines.shipping): what is printed comes back whole,
behind any prefix; a block cut short or tampered with is skipped; no member is written
outside the results folder."""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path

from mlperf_pilot.pipelines.shipping import (
    BEGIN,
    END,
    LINE,
    Shipped,
    archive_lines,
    read_shipped,
    unpack,
)


def _folder(root: Path) -> Path:
    folder = root / "sys" / "model" / "Offline"
    (folder / "performance" / "run_1").mkdir(parents=True)
    (folder / "performance" / "run_1" / "mlperf_log_detail.txt").write_bytes(bytes(range(256)))
    (folder / "performance" / "run_1" / "mlperf_log_trace.json").write_text("[]")
    (folder / "run_spec.json").write_text('{"model": "m"}')
    return folder


def test_round_trip_behind_prefixes(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "a")
    lines = [f"2026-01-01T00:00:00Z [run : verdict] {line}"
             for line in archive_lines(folder, tmp_path / "a")]
    assert lines[0].endswith(tuple("0123456789")) and BEGIN in lines[0]
    (shipped,) = list(read_shipped(["noise", *lines, "more noise"]))
    assert shipped.name == "sys/model/Offline"
    written = unpack(shipped, tmp_path / "b")
    back = tmp_path / "b" / "sys" / "model" / "Offline"
    assert (back / "performance" / "run_1" / "mlperf_log_detail.txt").read_bytes() == \
        bytes(range(256))
    assert (back / "run_spec.json").read_text() == '{"model": "m"}'
    assert not (back / "performance" / "run_1" / "mlperf_log_trace.json").exists()
    assert len(written) == 2


def test_cut_or_changed_blocks_are_skipped(tmp_path: Path) -> None:
    lines = list(archive_lines(_folder(tmp_path), tmp_path))
    assert list(read_shipped(lines[:-1])) == []  # no end marker
    assert list(read_shipped([lines[0], *lines[2:]])) == []  # a line lost: size differs
    renamed = [*lines[:-1], f"{END} other/name/Offline"]
    assert list(read_shipped(renamed)) == []


def test_members_outside_the_folder_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("../evil.txt", "/abs.txt", "ok/file.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    data = buffer.getvalue()
    text = base64.b64encode(data).decode()
    (shipped,) = list(read_shipped([f"{BEGIN} ok {len(data)}", f"{LINE} {text}",
                                    f"{END} ok"]))
    assert isinstance(shipped, Shipped)
    written = unpack(shipped, tmp_path / "out")
    assert written == [tmp_path / "out" / "ok" / "file.txt"]
    assert not (tmp_path / "evil.txt").exists() and not Path("/abs.txt").exists()
