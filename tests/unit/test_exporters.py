"""The exporter axis (report/exporters/): its registry, what a stored test becomes in a
tracker (params, metrics, tags, artifacts), and that no secret is in any of them.
The trackers themselves run in tests/integration/test_export_trackers.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlperf_pilot.errors import ConfigError, UnknownPluginError
from mlperf_pilot.registry import BUILTIN
from mlperf_pilot.report.exporters import EXPORTERS, Exporter, make_exporter
from mlperf_pilot.report.exporters.base import is_secret_key, public_settings, tracked_run
from mlperf_pilot.report.exporters.mlflow_export import check_tracking_uri
from mlperf_pilot.report.exporters.wandb_export import wandb_run_id
from mlperf_pilot.results.records import RunRecord
from mlperf_pilot.results.store import StoredTest
from mlperf_pilot.vocab import Mode, RunStatus, Scenario


def test_naming_the_exporters_imports_no_tracker() -> None:
    """In a fresh interpreter: the CLI and the registry load neither an exporter's module
    nor its library; choosing one loads that module only (its library: when it exports)."""
    code = """
import json, sys
import mlperf_pilot.cli.main
from mlperf_pilot.report.exporters import EXPORTERS
names = EXPORTERS.names()
watched = ["mlflow", "wandb", "mlperf_pilot.report.exporters.mlflow_export",
           "mlperf_pilot.report.exporters.wandb_export"]
before = [m for m in watched if m in sys.modules]
EXPORTERS.get("wandb")
after = [m for m in watched if m in sys.modules]
print(json.dumps({"names": names, "before": before, "after": after}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert {"mlflow", "wandb"} <= set(found["names"])
    assert found["before"] == []
    assert found["after"] == ["mlperf_pilot.report.exporters.wandb_export"]


def test_every_built_in_exporter_is_an_exporter() -> None:
    for name in EXPORTERS.names():
        if EXPORTERS.origin(name) == BUILTIN:
            cls = EXPORTERS.get(name)
            assert issubclass(cls, Exporter) and cls.name == name and cls.extra == name
    with pytest.raises(UnknownPluginError) as caught:
        make_exporter("neptune")
    assert "mlflow" in (caught.value.hint or "") and "wandb" in (caught.value.hint or "")


@pytest.mark.parametrize("key", ["sut.token_file", "TOKEN", "aws_secret_access_key",
                                 "db.password", "passwd", "credentials_file", "api_key",
                                 "headers.Authorization", "sut.apiKey", "private_key",
                                 "session-key"])
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["sut.max_batch_size", "model_path", "dataset_path",
                                 "sut.endpoint", "loadgen.target_qps", "sut.workers"])
def test_ordinary_keys(key: str) -> None:
    assert not is_secret_key(key)


def _failed_test(tmp_path: Path) -> StoredTest:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "mlperf_log_summary.txt").write_text("summary\n")
    (logs / "record.json").write_text("{}\n")
    (logs / "nested").mkdir()  # folders are not artifacts
    record = RunRecord(model="m", mlperf_model="resnet50", backend="onnxruntime",
                       backend_version="1.32.0", device="cpu",
                       device_in_use="CPUExecutionProvider", system="onnxruntime-cpu",
                       scenario=Scenario.OFFLINE, mode=Mode.PERFORMANCE,
                       status=RunStatus.FAILED, reasons=["SutError: the server went away"],
                       samples_failed=7, log_dir=str(logs))
    settings = {"sut": {"kind": "oip", "endpoint": "http://127.0.0.1:8000",
                        "token_file": "/run/secrets/token", "max_batch_size": 8},
                "scenarios": ["Offline"], "count": None, "trace": False,
                "auth": {"password": "hunter2"}}
    provenance = {"command": "mlperf-pilot run ...", "host": {"name": "box"},
                  "versions": {"python": "3.11.7",
                               "packages": {"onnxruntime": "1.32.0"}}}
    return StoredTest(test_id="T1-Offline-performance", kind="run", record=record,
                      settings=settings, provenance=provenance)


def test_a_stored_test_as_a_tracker_run(tmp_path: Path) -> None:
    run = tracked_run(_failed_test(tmp_path))
    assert run.params == {"sut.kind": "oip", "sut.endpoint": "http://127.0.0.1:8000",
                          "sut.max_batch_size": "8", "scenarios": '["Offline"]',
                          "count": "null", "trace": "false"}
    assert run.metrics == {"samples_failed": 7.0}  # no LoadGen result: nothing else
    assert run.tags["status"] == "FAILED"
    assert run.tags["reasons"] == "SutError: the server went away"
    assert run.tags["test_id"] == "T1-Offline-performance" and run.tags["host"] == "box"
    assert run.tags["version.onnxruntime"] == "1.32.0" and run.tags["version.python"] == \
        "3.11.7"
    assert run.tags["submittable"] == "false" and run.tags["sut_kind"] == "local"
    assert "metric_value" not in run.tags and "execution_mode" not in run.tags  # None
    assert [path.name for path in run.artifacts] == ["mlperf_log_summary.txt", "record.json"]
    assert run.settings == {"sut": {"kind": "oip", "endpoint": "http://127.0.0.1:8000",
                                    "max_batch_size": 8},
                            "scenarios": ["Offline"], "count": None, "trace": False,
                            "auth": {}}
    text = json.dumps([run.params, run.tags, run.settings])
    assert "hunter2" not in text and "/run/secrets/token" not in text


def test_public_settings_keeps_the_nesting() -> None:
    assert public_settings({"a": {"secret": 1, "b": {"c": 2}}, "token": "x"}) == \
        {"a": {"b": {"c": 2}}}


def test_wandb_run_ids() -> None:
    readable = "20261202T061809Z-a894d3d52af8-SingleStream-performance"
    assert wandb_run_id(readable) == readable
    odd = "20261202T061809Z-a894d3d52af8-Offline-performance-TEST01/x" + "y" * 60
    hashed = wandb_run_id(odd)
    assert hashed == wandb_run_id(odd) and len(hashed) <= 64 and hashed.isalnum()
    assert hashed != wandb_run_id(odd + "z")


def test_tracking_uris() -> None:
    assert check_tracking_uri(" http://127.0.0.1:5000 ") == "http://127.0.0.1:5000"
    with pytest.raises(ConfigError, match="must not hold credentials"):
        check_tracking_uri("https://me:pw@mlflow.example")
    with pytest.raises(ConfigError, match="empty"):
        check_tracking_uri("  ")
