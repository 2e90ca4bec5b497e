"""The container image really built and the demo really run in it (marked container).

`mlperf-pilot pipeline image --builder podman` builds the repository's Containerfile on the
local base `localhost/mlperf-pilot-base:bookworm` (tests/servers/container_base.py makes
it with debootstrap once; podman's storage keeps it, and the image's layers, between
runs), with this machine's pip settings handed to the build (its wheel folders and local
indexes mounted read-only, its CA, the host's network): the Containerfile itself stays the
public one. Then `podman run --network none` runs `mlperf-pilot run` of the demo with the
host's asset cache and a results folder as volumes, and the results appear on the host.
Skipped, with the cause, where podman cannot run (scripts/podman-setup installs it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servers.container_base import BASE_IMAGE, ContainerUnavailable, ensure_base

pytestmark = [pytest.mark.container, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TAG = "localhost/mlperf-pilot:test"
DEMO = "efficientnet-lite0-demo"
# pip's settings that say where packages come from, as the build's PIP_* arguments
_PIP_KEYS = {"index-url": "PIP_INDEX_URL", "extra-index-url": "PIP_EXTRA_INDEX_URL",
             "find-links": "PIP_FIND_LINKS", "cert": "PIP_CERT",
             "trusted-host": "PIP_TRUSTED_HOST"}
CA_IN_BUILD = "/run/host-pip-ca.pem"  # not over the image's own CA file (apt writes that)


def _mlperf(*argv: str, timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlperf_pilot", *argv], capture_output=True,
                          text=True, timeout=timeout, check=False, **kwargs)  # type: ignore


def host_pip_settings() -> tuple[list[str], list[str]]:
    """This machine's pip settings (``pip config list``: files and PIP_* variables) as
    the build's ``--build-arg``s, and the ``--volume``s that make their local folders
    (find-links, file:// indexes, the CA file) the same paths inside the build."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                            capture_output=True, text=True, timeout=60, check=False).stdout
    settings: dict[str, str] = {}
    for line in listed.splitlines():  # env (":env:.") after the files: it wins
        match = re.match(r"^([^.]*)\.([a-z-]+)='(.*)'$", line.strip())
        if match and match.group(2) in _PIP_KEYS:
            settings[match.group(2)] = match.group(3)
    build_args, volumes = [], []
    for key, value in settings.items():
        if key == "cert":
            if Path(value).is_file():
                volumes.append(f"--volume={value}:{CA_IN_BUILD}:ro")
                build_args.append(f"PIP_CERT={CA_IN_BUILD}")
            continue
        build_args.append(f"{_PIP_KEYS[key]}={value}")
        for item in value.split():
            path = Path(item.removeprefix("file://"))
            if path.is_absolute() and path.exists():
                # a file:// index's pages link to ../../files: its parent goes in too
                mount = path.parent if key.endswith("index-url") or path.is_file() else path
                volumes.append(f"--volume={mount}:{mount}:ro")
    folders = [p for p in settings.get("find-links", "").split() if Path(p).is_dir()]
    if any(Path(f).glob("torch-*+cpu-*.whl") for f in folders):
        build_args.append("TORCH_INDEX_URL=none")  # the CPU wheel is local: no torch index
    return build_args, sorted(set(volumes))


@pytest.fixture(scope="module")
def base_image() -> str:
    try:
        seconds = ensure_base()
    except ContainerUnavailable as exc:
        pytest.skip(f"podman cannot run here: {exc}")
    print(f"base image {BASE_IMAGE}: " + (f"made in {seconds:.0f} s" if seconds else "cached"))
    return BASE_IMAGE


@pytest.fixture(scope="module")
def image(base_image: str) -> str:
    build_args, volumes = host_pip_settings()
    argv = ["pipeline", "image", "--builder", "podman", "--base-image", base_image,
            "--tag", TAG, "--context", str(REPO), "--builder-arg=--network=host"]
    argv += [f"--builder-arg={v}" for v in volumes]
    for item in build_args:
        argv += ["--build-arg", item]
    started = time.perf_counter()
    built = _mlperf(*argv, timeout=3600)
    assert built.returncode == 0, built.stderr[-3000:] + built.stdout[-3000:]
    print(f"image {TAG} built in {time.perf_counter() - started:.0f} s")
    # the layers an earlier build left untagged (a changed pyproject.toml's ~1.5 GB): gone,
    # the current image's layers (the next build's cache) kept
    _podman("image", "prune", "-f", timeout=300)
    return TAG


def _podman(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *argv], capture_output=True, text=True, timeout=timeout,
                          check=False)


def _writable_by(folder: Path, user: str) -> None:
    """Hand the folder to the image's user (uid:gid), as `kubectl`'s fsGroup would."""
    uid, _, gid = user.partition(":")
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(folder):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, int(uid), int(gid or 0))
    else:  # rootless podman: the container's uid is a sub-uid of ours
        _podman("unshare", "chown", "-R", f"{uid}:{gid or 0}", str(folder))


def test_the_image_is_non_root_with_the_entrypoint_and_volumes(image: str) -> None:
    inspected = _podman("image", "inspect", image)
    assert inspected.returncode == 0, inspected.stderr
    config = json.loads(inspected.stdout)[0]["Config"]
    assert re.fullmatch(r"[1-9]\d*:\d+", config["User"])  # numeric, not root: runAsNonRoot
    assert config["Entrypoint"] == ["mlperf-pilot"]
    assert set(config["Volumes"]) == {"/data/cache", "/data/results"}
    assert "MLPERF_PILOT_CACHE=/data/cache" in config["Env"]
    shell = _podman("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image,
                    "-c", "id -u; command -v mlperf-pilot; mlperf-pilot --version")
    assert shell.returncode == 0, shell.stderr
    uid, where, version = shell.stdout.split("\n")[:3]
    assert uid == config["User"].split(":")[0] and where == "/opt/mlperf-pilot/bin/mlperf-pilot"
    assert version.startswith("mlperf-pilot, version ")


def test_the_demo_runs_in_the_image_with_the_hosts_cache_and_results(
        image: str, tmp_path: Path) -> None:
    cache, results = tmp_path / "cache", tmp_path / "results"
    results.mkdir()
    # the host's cache, holding what the demo uses (built here; the container needs no network)
    fetched = _mlperf("cache", "fetch", "--model", DEMO, "--scenario", "SingleStream",
                      timeout=900, env=dict(os.environ, MLPERF_PILOT_CACHE=str(cache)))
    assert fetched.returncode == 0, fetched.stderr[-2000:]
    user = json.loads(_podman("image", "inspect", image).stdout)[0]["Config"]["User"]
    _writable_by(cache, user)
    _writable_by(results, user)
    started = time.perf_counter()
    ran = _podman("run", "--rm", "--network", "none", "-v", f"{cache}:/data/cache",
                  "-v", f"{results}:/data/results", image, "run", "--model", DEMO,
                  "--scenario", "SingleStream", "--duration-ms", "500", "--json", timeout=900)
    elapsed = time.perf_counter() - started
    assert ran.returncode == 0, ran.stderr[-3000:] + ran.stdout[-2000:]
    print(f"the demo ran in the container in {elapsed:.1f} s")
    summary = json.loads(ran.stdout)
    assert summary["model_source"].startswith("cached")  # the host's cache was used
    assert [(r["mode"], r["status"]) for r in summary["records"]] == [
        ("accuracy", "VALID"), ("performance", "VALID")]

    scenario = results / "onnxruntime-cpu" / DEMO / "SingleStream"
    records = {p.stem: json.loads(p.read_text()) for p in (scenario / "records").glob("*.json")
               if not p.name.endswith(".job.json")}
    assert {name: record["status"] for name, record in records.items()} == {
        "accuracy": "VALID", "performance": "VALID"}
    log = (scenario / "performance" / "run_1" / "mlperf_log_summary.txt").read_text()
    assert "Result is : VALID" in log and "SingleStream" in log
    assert (scenario / "accuracy" / "accuracy.txt").read_text().startswith("accuracy=")
    assert (results / "results.sqlite").is_file()  # the store, on the host's volume
    assert (scenario / "records" / "performance.json").stat().st_uid == int(user.split(":")[0])


def test_a_failed_build_exits_1_with_the_builders_last_lines(base_image: str,
                                                             tmp_path: Path) -> None:
    (tmp_path / "Containerfile").write_text(
        "ARG BASE_IMAGE=scratch\nFROM ${BASE_IMAGE}\nRUN echo the-build-broke-here; exit 3\n")
    failed = _mlperf("pipeline", "image", "--builder", "podman", "--context", str(tmp_path),
                     "--base-image", base_image, "--tag", "localhost/mlperf-pilot:broken",
                     timeout=300)
    assert failed.returncode == 1
    assert "the-build-broke-here" in failed.stdout  # streamed
    tail = failed.stderr.split("last lines of podman:")[1]
    assert "the-build-broke-here" in tail
    assert "error: podman failed building the image (exit " in failed.stderr
