"""A vendor's backend from another package, through the entry-point group
``mlperf_pilot.backends``: nothing is pip-installed into the venv; a temporary
``vendor_backend.py`` and its ``.dist-info`` sit in a folder on PYTHONPATH of the
installed console script, as an installed package would sit in site-packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugin_dists import write_plugin_dist

VENDOR_BACKEND = '''
"""A vendor runtime: ONNX Runtime under another name, saying so in the record."""

from mlperf_pilot.backends.onnxruntime import OnnxRuntimeBackend


class VendorBackend(OnnxRuntimeBackend):
    name = "vendor-ort"

    @property
    def device_in_use(self) -> str:
        return "vendor:" + super().device_in_use
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vendor package, a package whose entry point does not load, and a SUT kind
    from a package (never imported by a listing)."""
    folder = tmp_path_factory.mktemp("site")
    write_plugin_dist(folder, "vendor-backend", {
        "mlperf_pilot.backends": {"vendor-ort": "vendor_backend:VendorBackend"}},
        {"vendor_backend": VENDOR_BACKEND})
    write_plugin_dist(folder, "broken-backend", {
        "mlperf_pilot.backends": {"broken": "no_such_vendor_module:Backend"}})
    write_plugin_dist(folder, "acme-sut", {
        "mlperf_pilot.suts": {"acme": "acme_sut_not_importable:AcmeKind"}})
    return folder


def _cli(site: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mlperf-pilot")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlperf_pilot"]
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([*cmd, *argv], cwd=cwd, env=dict(os.environ, PYTHONPATH=path),
                          capture_output=True, text=True, timeout=120, check=False)


def test_list_backends_shows_the_vendor_backend_and_its_origin(site: Path, tmp_path: Path
                                                               ) -> None:
    """(Once, as JSON: the listing asks every installed framework for its devices.)"""
    done = _cli(site, tmp_path, "list", "backends", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["Backend"]: r for r in json.loads(done.stdout)}
    assert rows["vendor-ort"]["Origin"] == "entry point of vendor-backend"
    assert rows["vendor-ort"]["Installed"] == "yes" and rows["vendor-ort"]["Formats"] == "onnx"
    assert rows["onnxruntime"]["Origin"] == "built-in"
    # a package whose entry point does not load is a row that says why, not a traceback
    assert rows["broken"]["Origin"] == "entry point of broken-backend"
    assert rows["broken"]["Installed"].startswith("no, cannot be loaded (ModuleNotFoundError")


def test_list_suts_shows_kinds_without_importing_them(site: Path, tmp_path: Path) -> None:
    done = _cli(site, tmp_path, "list", "suts", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["Kind"]: r for r in json.loads(done.stdout)}
    assert rows["local"] == {"Kind": "local", "Origin": "built-in",
                             "Provided by": "mlperf_pilot.sut.local_kind:LocalKind"}
    # its module does not exist: listed all the same, as nothing is imported to list it
    assert rows["acme"] == {"Kind": "acme", "Origin": "entry point of acme-sut",
                            "Provided by": "acme_sut_not_importable:AcmeKind"}


def test_the_demo_runs_on_the_vendor_backend(site: Path, tmp_path: Path, logits_model: Path,
                                             colour_imagenet: Path) -> None:
    """The demo card with a small stand-in model file and photo set (as tests/e2e run it)."""
    results = tmp_path / "results"
    done = _cli(site, tmp_path, "run", "--backend", "vendor-ort", "--model-path",
                str(logits_model), "--dataset-path", str(colour_imagenet), "--count", "8",
                "--duration-ms", "300", "--scenario", "Offline", "--mode", "both",
                "--results-dir", str(results), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["ok"] is True and summary["system"] == "vendor-ort-cpu"
    records = summary["records"]
    assert [(r["mode"], r["status"]) for r in records] == [("accuracy", "VALID"),
                                                          ("performance", "VALID")]
    for record in records:
        assert record["model"] == "efficientnet-lite0-demo"
        assert record["backend"] == "vendor-ort"
        assert record["device_in_use"] == "vendor:CPUExecutionProvider"  # the vendor's code ran
    assert records[0]["accuracy"]["value"] == 100.0
    assert records[1]["metric_unit"] == "Samples/s" and records[1]["metric_value"] > 0
    kept = results / "vendor-ort-cpu" / "efficientnet-lite0-demo" / "Offline" / "records"
    on_disk = json.loads((kept / "performance.json").read_text())
    assert on_disk["backend"] == "vendor-ort" and on_disk["system"] == "vendor-ort-cpu"


def test_a_backend_that_cannot_be_loaded_is_one_clean_error(site: Path, tmp_path: Path,
                                                            logits_model: Path,
                                                            colour_imagenet: Path) -> None:
    done = _cli(site, tmp_path, "run", "--backend", "broken", "--model-path", str(logits_model),
                "--dataset-path", str(colour_imagenet), "--results-dir", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "error: the backend 'broken' (entry point no_such_vendor_module:Backend of "
        "broken-backend) cannot be loaded: ModuleNotFoundError: No module named "
        "'no_such_vendor_module'",
        "hint: reinstall broken-backend, or uninstall it",
    ]
    unknown = _cli(site, tmp_path, "run", "--backend", "vendor-orts")
    assert unknown.returncode == 2
    assert "error: unknown backend 'vendor-orts'" in unknown.stderr
    assert "tflite, vendor-ort" in unknown.stderr and "onnxruntime" in unknown.stderr
