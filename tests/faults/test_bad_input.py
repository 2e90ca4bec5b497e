"""Bad input at the CLI level: refused with one line of cause and one of fix, exit 2,
before any model is loaded or any image preprocessed (issue 11, section 4).

"Before any work" is checked on disk: nothing under the results folder, no preprocessed
sample in the cache (preprocessing comes before the model load, so no samples means no
model was loaded either), and a targets file byte for byte as it was.

Unwritable folders, as root: chmod does not stop root, so the cases use what does (a
folder under /proc, a ``chattr +i`` folder, a read-only bind mount), each skipped with
the reason where this machine does not allow it. Disk-full cases mount a small real
tmpfs (root only; skipped otherwise).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultkit import CliResult, assert_clean_error

from mlperf_pilot.datasets.prepared import usable_cores
from mlperf_pilot.preflight import THREADS_PER_CORE
from mlperf_pilot.storage import disk_full_error, is_disk_full

Cli = Callable[..., CliResult]
SAMPLE_BYTES = 3 * 224 * 224 * 4  # resnet50's preprocessed sample (float32 NCHW)


@pytest.fixture
def base(resnet50_model: Path, colour_imagenet: Path) -> list[str]:
    """A fast real run: the tiny resnet50-shaped model on 24 photos, Offline performance."""
    return ["run", "--model", "resnet50", "--model-path", str(resnet50_model),
            "--dataset-path", str(colour_imagenet), "--scenario", "Offline",
            "--mode", "performance", "--duration-ms", "300"]


def assert_no_work(results: Path, cache: Path) -> None:
    """Nothing written under the results folder, no preprocessed sample in the cache."""
    if results.is_dir():
        assert not any(results.rglob("*")), sorted(results.rglob("*"))
    preprocessed = cache / "entries" / "preprocessed"
    if preprocessed.is_dir():
        assert not any(preprocessed.rglob("*.npy")), sorted(preprocessed.rglob("*.npy"))


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# ------------------------------------------------------------------ unwritable folders


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``make(kind)``: a folder this process (root included) cannot write in."""
    undo: list[list[str]] = []

    def make(kind: str) -> Path:
        if kind == "proc":
            return Path("/proc")
        folder = tmp_path / f"locked-{kind}"
        folder.mkdir()
        if kind == "immutable":
            done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True,
                                  text=True, check=False) if shutil.which("chattr") else None
            if done is None or done.returncode != 0:
                pytest.skip("chattr +i is not available or not permitted here: "
                            + (done.stderr.strip() if done else "no chattr"))
            undo.append(["chattr", "-i", str(folder)])
        elif kind == "readonly-mount":
            bind = subprocess.run(["mount", "--bind", str(folder), str(folder)],
                                  capture_output=True, text=True, check=False)
            if bind.returncode != 0:
                pytest.skip(f"bind mounts are not permitted here: {bind.stderr.strip()}")
            undo.append(["umount", "-l", str(folder)])
            ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)],
                                capture_output=True, text=True, check=False)
            if ro.returncode != 0:
                pytest.skip(f"a read-only remount is not permitted here: {ro.stderr.strip()}")
        elif kind == "chmod":
            if os.geteuid() == 0:
                pytest.skip("root ignores permission bits (the other kinds cover root)")
            folder.chmod(0o555)
            undo.append(["chmod", "755", str(folder)])
        else:  # pragma: no cover
            raise ValueError(kind)
        probe = folder / "probe"
        try:
            probe.mkdir()
        except OSError:
            return folder
        probe.rmdir()
        pytest.skip(f"{kind}: this machine still lets us write in {folder}")

    yield make
    for command in reversed(undo):
        subprocess.run(command, capture_output=True, check=False)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``mount(name, size)``: a real tmpfs of that size (root only, else skipped)."""
    mounted: list[Path] = []

    def mount(name: str, size: str, *, fill: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(point)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
        mounted.append(point)
        if fill:
            _fill(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def _fill(point: Path) -> None:
    """Write a filler file until the file system has no block left."""
    with (point / "filler").open("wb", buffering=0) as out:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC


# ------------------------------------------------------------------------- --config


CONFIGS: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "a-folder": (lambda d: _mkdir(d / "conf.d"), "is a folder", "--config"),
    "binary": (lambda d: _write(d / "model.onnx", b"\x08\x07\x12\x04\xff\xfe\x00\x81onnx"),
               "not a text file", "--config"),
    "nul-bytes": (lambda d: _write(d / "nul.yaml", b"model: resnet50\n\x00\x00\n"),
                  "not valid YAML", "fix the syntax"),
    "a-list": (lambda d: _write(d / "list.yaml", b"- model\n- resnet50\n"),
               "must hold a mapping", "model: resnet50"),
    "bad-yaml": (lambda d: _write(d / "bad.yaml", b"model: [resnet50\nsut: {\n"),
                 "not valid YAML", "fix the syntax"),
    "a-scalar": (lambda d: _write(d / "scalar.yaml", b"resnet50\n"),
                 "must hold a mapping", "model: resnet50"),
    "missing": (lambda d: d / "nope.yaml", "does not exist", "--config"),
}


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_bad_config_file(cli: Cli, base: list[str], tmp_path: Path, cache_dir: Path,
                         case: str) -> None:
    make, cause, fix = CONFIGS[case]
    config = make(tmp_path)
    before = _snapshot(tmp_path)
    result = cli(*base, "--config", config)
    assert_clean_error(result, 2, cause=cause, fix=fix)
    assert str(config.name) in result.err
    assert_no_work(tmp_path / "results", cache_dir)
    assert _snapshot(tmp_path) == before


# -------------------------------------------------------------------- empty lists


@pytest.mark.parametrize(
    ("how", "cause", "fix"),
    [
        (["--set", "scenarios=[]"], "no scenario", "--scenario"),
        (["--set", "scenarios="], "no scenario", "--scenario"),
        (["--config", "modes.yaml"], "no mode", "--mode"),
        (["--set", "modes=[]"], "no mode", "--mode"),
        (["--config", "scenarios.yaml"], "no scenario", "--scenario"),
    ],
    ids=["set-scenarios-[]", "set-scenarios-empty", "config-modes-[]", "set-modes-[]",
         "config-scenarios-[]"],
)
def test_empty_scenario_or_mode_lists(cli: Cli, resnet50_model: Path, colour_imagenet: Path,
                                      tmp_path: Path, cache_dir: Path, how: list[str],
                                      cause: str, fix: str) -> None:
    (tmp_path / "modes.yaml").write_text("model: resnet50\nmodes: []\n")
    (tmp_path / "scenarios.yaml").write_text("model: resnet50\nscenarios: []\n")
    result = cli("run", "--model", "resnet50", "--model-path", resnet50_model,
                 "--dataset-path", colour_imagenet, *how)
    assert_clean_error(result, 2, cause=cause, fix=fix)
    assert_no_work(tmp_path / "results", cache_dir)


def test_compliance_command_still_runs_without_modes(cli: Cli, resnet50_model: Path,
                                                     colour_imagenet: Path, tmp_path: Path,
                                                     cache_dir: Path) -> None:
    """`compliance` passes modes=[] itself: the empty-list rule does not refuse it; it
    reaches the path checks (here: a results folder that is a file)."""
    (tmp_path / "results.txt").write_text("mine\n")
    result = cli("compliance", "TEST01", "--model", "resnet50", "--model-path",
                 resnet50_model, "--dataset-path", colour_imagenet, "--results-dir",
                 tmp_path / "results.txt")
    assert_clean_error(result, 2, cause="is a file", fix="--results-dir")
    assert (tmp_path / "results.txt").read_text() == "mine\n"
    assert_no_work(tmp_path / "results", cache_dir)


# ----------------------------------------------------- folders that cannot be used


def _path_option(option: str, path: Path, base: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment that hand ``path`` to ``option``."""
    if option == "--cache-dir":
        return ["--cache-dir", str(path), *base], {}
    if option == "MLPERF_PILOT_CACHE":
        return base, {"MLPERF_PILOT_CACHE": str(path)}
    if option == "--targets-file":
        return [*base, "--execution-mode", "find", "--targets-file", str(path)], {}
    return [*base, option, str(path)], {}


PATH_OPTIONS = ["--results-dir", "--cache-dir", "MLPERF_PILOT_CACHE", "--targets-file"]


@pytest.mark.parametrize("option", PATH_OPTIONS)
@pytest.mark.parametrize("where", ["is-a-file", "under-a-file"])
def test_folder_option_that_is_or_lies_under_a_file(
    cli: Cli, base: list[str], tmp_path: Path, cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch, option: str, where: str,
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("my notes\n")
    if option == "--targets-file":  # the targets file must not be a folder
        blocker = tmp_path / "targets.d"
        blocker.mkdir()
        (blocker / "keep.yaml").write_text("a: 1\n")
        path = blocker if where == "is-a-file" else tmp_path / "notes.txt" / "t.yaml"
        (tmp_path / "notes.txt").write_text("my notes\n")
        cause = "is a folder" if where == "is-a-file" else "lies under the file"
    else:
        path = blocker if where == "is-a-file" else blocker / "sub" / "dir"
        cause = "is a file" if where == "is-a-file" else "lies under the file"
    argv, env = _path_option(option, path, base)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = _snapshot(tmp_path)
    result = cli(*argv)
    assert_clean_error(result, 2, cause=cause, fix=option)
    assert _snapshot(tmp_path) == before  # the file (or folder) is untouched
    assert_no_work(tmp_path / "results", cache_dir)


@pytest.mark.parametrize("option", PATH_OPTIONS)
@pytest.mark.parametrize("kind", ["proc", "immutable", "readonly-mount", "chmod"])
def test_folder_option_that_is_not_writable(
    cli: Cli, base: list[str], tmp_path: Path, cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch, unwritable: Callable[[str], Path], option: str,
    kind: str,
) -> None:
    folder = unwritable(kind)
    path = folder / ("targets.yaml" if option == "--targets-file" else "mlperf-pilot-out")
    argv, env = _path_option(option, path, base)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = cli(*argv)
    assert_clean_error(result, 2, cause="not writable", fix=option)
    assert str(folder) in result.err
    assert_no_work(tmp_path / "results", cache_dir)


# ----------------------------------------------------------- find keeps calibrations


CALIBRATED = ("# mine\nonnxruntime-cpu:\n  resnet50:\n    Offline: {target_qps: 123.4}\n"
              "    SingleStream: {target_latency_ms: 5.5}\n")


@pytest.mark.parametrize(
    ("argv", "cause", "fix"),
    [
        (["--results-dir", "notes.txt"], "is a file", "--results-dir"),
        (["--cache-dir", "notes.txt/cache"], "lies under the file", "--cache-dir"),
        (["--threads", "100000"], "--threads 100000", "--threads"),
        (["--duration-ms", "0"], "loadgen.min_duration_ms", "--duration-ms"),
    ],
    ids=["results-dir-file", "cache-under-file", "threads", "duration-0"],
)
def test_find_mode_loses_no_calibration(cli: Cli, base: list[str], tmp_path: Path,
                                        cache_dir: Path, argv: list[str], cause: str,
                                        fix: str) -> None:
    """Bad input in find mode is refused before the first measurement: the targets file
    and everything calibrated in it stay as they were."""
    targets = tmp_path / "mlperf-pilot-targets.yaml"
    targets.write_text(CALIBRATED)
    (tmp_path / "notes.txt").write_text("my notes\n")
    if argv[0] == "--cache-dir":
        argv, head = argv[2:], argv[:2]
    else:
        head = []
    result = cli(*head, *base, "--execution-mode", "find", *argv)
    assert_clean_error(result, 2, cause=cause, fix=fix)
    assert targets.read_text() == CALIBRATED
    assert_no_work(tmp_path / "results", cache_dir)


TARGETS = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"),
    "a-list": (b"- 1\n- 2\n", "must hold a mapping"),
    "bad-yaml": (b"onnxruntime-cpu: {resnet50: [\n", "not valid YAML"),
    "entry-not-a-mapping": (b"onnxruntime-cpu:\n  resnet50:\n    Offline: fast\n",
                            "onnxruntime-cpu.resnet50.Offline"),
    "system-not-a-mapping": (b"onnxruntime-cpu: 5\n", "onnxruntime-cpu"),
}


@pytest.mark.parametrize("mode", ["find", "valid"])
@pytest.mark.parametrize("case", sorted(TARGETS))
def test_unreadable_targets_file(cli: Cli, base: list[str], tmp_path: Path, cache_dir: Path,
                                 mode: str, case: str) -> None:
    content, cause = TARGETS[case]
    targets = tmp_path / "targets.yaml"
    targets.write_bytes(content)
    result = cli(*base, "--execution-mode", mode, "--targets-file", targets)
    assert_clean_error(result, 2, cause=cause, fix="targets")
    assert targets.read_bytes() == content
    assert_no_work(tmp_path / "results", cache_dir)


# ------------------------------------------------------------------------ numbers


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


HUGE = str(10**23)
NUMBERS = [
    (["--target-qps", "inf"], "loadgen.target_qps", "--target-qps"),
    (["--target-qps", "nan"], "loadgen.target_qps", "--target-qps"),
    (["--target-qps", "-5"], "loadgen.target_qps", "--target-qps"),
    (["--target-qps", "0"], "loadgen.target_qps", "--target-qps"),
    (["--target-qps", "1e300"], "loadgen.target_qps", "--target-qps"),
    (["--target-latency-ms", "inf"], "loadgen.target_latency_ms", "--target-latency-ms"),
    (["--target-latency-ms", "nan"], "loadgen.target_latency_ms", "--target-latency-ms"),
    (["--target-latency-ms", "-1"], "loadgen.target_latency_ms", "--target-latency-ms"),
    (["--target-latency-ms", "0"], "loadgen.target_latency_ms", "--target-latency-ms"),
    (["--duration-ms", "0"], "loadgen.min_duration_ms", "--duration-ms 100"),
    (["--duration-ms", "-1"], "loadgen.min_duration_ms", "--duration-ms 100"),
    (["--duration-ms", "99"], "loadgen.min_duration_ms", "--duration-ms 100"),
    (["--duration-ms", HUGE], "loadgen.min_duration_ms", "--duration-ms"),
    (["--set", "test_duration_ms=0"], "test_duration_ms", "100"),
    (["--count", "0"], "count", "--count"),
    (["--count", "-3"], "count", "--count"),
    (["--set", "loadgen.min_query_count=" + HUGE], "loadgen.min_query_count", "min_query_count"),
    (["--set", "loadgen.max_duration_ms=" + HUGE], "loadgen.max_duration_ms", "max_duration"),
    (["--set", "sut.batch_timeout_us=" + HUGE], "sut.batch_timeout_us", "batch_timeout_us"),
    (["--set", "loadgen.performance_sample_count=" + HUGE],
     "loadgen.performance_sample_count", "performance_sample_count"),
    (["--max-batch-size", "0"], "sut.max_batch_size", "--max-batch-size"),
    (["--max-batch-size", HUGE], "--max-batch-size", "--max-batch-size"),
    (["--max-batch-size", str(_mem_available() // SAMPLE_BYTES + 1)], "memory",
     "--max-batch-size"),
    (["--threads", "1000"], "--threads 1000", "--threads"),
    (["--threads", HUGE], "--threads", "--threads"),
    (["--workers", "1000"], "--workers 1000", "--workers"),
    (["--workers", "3", "--threads", str(THREADS_PER_CORE * usable_cores())],
     "--workers 3 x --threads", "--threads"),
    (["--set", "preprocess_workers=1000"], "preprocess_workers", "preprocess_workers"),
    (["--set", "max_reruns=" + HUGE], "max_reruns", "max_reruns"),
]


@pytest.mark.parametrize(("argv", "cause", "fix"), NUMBERS,
                         ids=[" ".join(a)[:40] for a, _, _ in NUMBERS])
def test_bad_numbers(cli: Cli, base: list[str], tmp_path: Path, cache_dir: Path,
                     argv: list[str], cause: str, fix: str) -> None:
    result = cli(*base, *argv)
    assert_clean_error(result, 2, cause=cause, fix=fix)
    assert "OverflowError" not in result.text
    assert_no_work(tmp_path / "results", cache_dir)


@pytest.mark.parametrize("argv", [["run", "--compliance"], ["compliance", "TEST01"]],
                         ids=["run --compliance", "compliance"])
def test_an_unknown_round_with_compliance_is_refused_before_any_run(
        cli: Cli, base: list[str], tmp_path: Path, cache_dir: Path, argv: list[str]) -> None:
    flags = [a for a in base[1:] if a not in ("--mode", "performance")]
    result = cli(*argv, *flags, "--round", "v9.9")
    assert_clean_error(result, 2, cause="unknown round 'v9.9'", fix="v6.1")
    assert_no_work(tmp_path / "results", cache_dir)


def test_thread_limit_is_stated(cli: Cli, base: list[str]) -> None:
    limit = THREADS_PER_CORE * usable_cores()
    result = cli(*base, "--threads", str(limit + 1))
    assert_clean_error(result, 2, cause=f"--threads {limit + 1}", fix=f"at most {limit}")
    assert f"{usable_cores()} usable core" in result.err


@pytest.mark.parametrize("count", ["1000", HUGE])
def test_count_above_the_dataset_is_capped_with_a_note(cli: Cli, base: list[str],
                                                       tmp_path: Path, count: str) -> None:
    result = cli(*base, "--count", count, "--json")
    assert result.code == 0, result.text[-3000:]
    import json

    payload = json.loads(result.out)
    assert any(f"--count {count}" in n and "24" in n and "capped" in n
               for n in payload["notes"]), payload["notes"]
    (record,) = payload["records"]
    assert record["status"] == "VALID"
    spec = json.loads((tmp_path / "results/onnxruntime-cpu/resnet50/Offline/run_spec.json")
                      .read_text())
    assert spec["resolved"]["dataset_count"] == 24


# --------------------------------------------------------------------- disk full


@pytest.mark.parametrize("disk", ["full-before", "full-mid-run"])
def test_disk_full_while_writing_results(cli: Cli, base: list[str], tmp_path: Path,
                                         small_tmpfs: Callable[..., Path], disk: str) -> None:
    """A results disk already full (the first file fails), or one with room for about
    the accuracy test only (measured: 64-96 KiB hold it, 160 KiB the whole run)."""
    from mlperf_pilot.results.records import read_record

    full = disk == "full-before"
    mount = small_tmpfs("disk", "256k" if full else "80k", fill=full)
    results = mount / "results"
    result = cli(*[a if a != "performance" else "both" for a in base], "--results-dir",
                 results)
    assert_clean_error(result, 1, cause="no space left", fix="free space")
    cause = next(ln for ln in result.err.splitlines() if ln.startswith("error:"))
    assert str(results) in cause  # the file that could not be written
    assert "finished test(s)" in result.err and "kept" in result.err
    # nothing half-written by us: no temp file left, every record there is whole
    assert not [p for p in mount.rglob("*") if ".tmp" in p.name]
    for record in results.rglob("records/*.json"):
        if not record.name.endswith(".job.json"):
            read_record(record)
    if full:
        assert "kept: 0 finished test(s)" in result.err
    elif "(Offline accuracy)" in result.err:  # kept where the error says
        (found,) = results.rglob("records/accuracy.json")
        assert str(found.parents[1]) in result.err
        assert read_record(found).status == "VALID"


def test_disk_full_while_writing_the_cache(cli: Cli, base: list[str], tmp_path: Path,
                                           small_tmpfs: Callable[..., Path]) -> None:
    """A 1 MiB cache holds one 602 KB resnet50 sample: the second one fills the disk."""
    import numpy as np

    cache = small_tmpfs("cache", "1m")
    result = cli("--cache-dir", cache, *base, "--count", "6", "--set", "preprocess_workers=1")
    assert_clean_error(result, 1, cause="no space left", fix="free space")
    assert str(cache) in result.err
    assert "kept" in result.err and "reused" in result.err
    assert not [p for p in cache.rglob("*") if ".tmp" in p.name]
    samples = sorted(cache.rglob("*.npy"))
    assert samples, "the sample that fitted is kept"
    for sample in samples:  # each kept sample is whole
        assert np.load(sample).shape == (3, 224, 224)
    assert not list((tmp_path / "results").rglob("records/*.json"))  # no test ran


def test_disk_full_while_saving_calibration(cli: Cli, base: list[str], tmp_path: Path,
                                            small_tmpfs: Callable[..., Path]) -> None:
    """find measures, then cannot save: the error says what was measured, and the
    targets file is as it was."""
    disk = small_tmpfs("targets", "64k")
    targets = disk / "targets.yaml"
    targets.write_text(CALIBRATED)
    _fill(disk)
    result = cli(*base, "--execution-mode", "find", "--targets-file", targets)
    assert_clean_error(result, 1, cause="no space left", fix="target_qps")
    assert str(targets) in result.err
    assert targets.read_text() == CALIBRATED
    assert not [p for p in disk.rglob("*") if ".tmp" in p.name]


def test_disk_full_translation_at_the_boundary(tmp_path: Path) -> None:
    """Where no tmpfs can be mounted: the translation itself, on a real OSError."""
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "user.conf"))
    assert is_disk_full(exc)
    assert is_disk_full(OSError(errno.EDQUOT, "quota"))
    assert not is_disk_full(OSError(errno.EACCES, "denied"))
    error = disk_full_error(exc, kept="2 finished test(s) in results")
    assert error.exit_code == 1
    assert "no space left" in error.message.lower() and str(tmp_path / "user.conf") in error.message
    assert "\n" not in error.message and error.hint and "free space" in error.hint
    assert "kept: 2 finished test(s)" in error.hint
