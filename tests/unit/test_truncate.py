from __future__ import annotations

import hashlib
from pathlib import Path

from mlperf_pilot.submission.truncate import truncate_accuracy_dir, truncate_tree


def make_log(folder: Path, entries: int) -> bytes:
    folder.mkdir(parents=True)
    lines = [f'{{ "seq_id" : {i}, "qsl_idx" : {i}, "data" : "0000C842" }}'
             for i in range(entries)]
    data = ("[\n" + ",\n".join(lines) + "\n]\n").encode()
    (folder / "mlperf_log_accuracy.json").write_bytes(data)
    (folder / "accuracy.txt").write_text("accuracy=76.000%, good=380, total=500\n")
    return data


def test_truncation_is_the_official_one(tmp_path: Path) -> None:
    data = make_log(tmp_path / "acc", 2000)
    done = truncate_accuracy_dir(tmp_path / "acc", tmp_path / "backup")
    assert done is not None and done.original_bytes == len(data)
    text = data.decode()
    expected = text[:4096] + "\n\n...\n\n" + text[-4096:]
    assert (tmp_path / "acc/mlperf_log_accuracy.json").read_text() == expected
    digest = hashlib.sha256(data).hexdigest()
    assert (tmp_path / "acc/accuracy.txt").read_text() == (
        f"accuracy=76.000%, good=380, total=500\n\nhash={digest}\n")
    assert (tmp_path / "backup/mlperf_log_accuracy.json").read_bytes() == data
    # a second pass changes nothing
    assert truncate_accuracy_dir(tmp_path / "acc", tmp_path / "backup2") is None
    assert (tmp_path / "acc/accuracy.txt").read_text().count("hash=") == 1


def test_small_logs_get_a_hash_but_stay_whole(tmp_path: Path) -> None:
    data = make_log(tmp_path / "acc", 3)
    truncate_accuracy_dir(tmp_path / "acc", None)
    assert (tmp_path / "acc/mlperf_log_accuracy.json").read_bytes() == data
    assert "hash=" + hashlib.sha256(data).hexdigest() in (tmp_path / "acc/accuracy.txt").read_text()


def test_tree_truncates_results_and_test01(tmp_path: Path) -> None:
    scenario = tmp_path / "closed/Acme/results/box/resnet/Offline"
    make_log(scenario / "accuracy", 500)
    make_log(scenario / "TEST01/accuracy", 500)
    done = truncate_tree([scenario], tmp_path, tmp_path.parent / "logs")
    assert len(done) == 2
    assert all(d.backup and d.backup.is_file() for d in done)
    assert (tmp_path.parent / "logs/closed/Acme/results/box/resnet/Offline/TEST01/accuracy/"
            "mlperf_log_accuracy.json").is_file()
