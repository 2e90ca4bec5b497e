"""``mlperf-pilot serverless sweep`` end to end on a real moto server with local functions
(the real handler in the local pool) and the tiny demo-interface model (tests/builders.py):
two memory sizes measured, one refused, the table, the JSON and the PNG charts written,
and what matplotlib drew read back from the figures (sweep.json keeps each bar's height).
Each LoadGen test is short (300 ms), SingleStream and Offline in performance mode.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from builders import make_imagenet_folder
from mlperf_pilot.cli.main import main

DEMO = "efficientnet-lite0-demo"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    make_imagenet_folder(root, 8)
    return root


@pytest.fixture
def bucket(moto_url: str) -> str:
    import boto3

    boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1").create_bucket(
        Bucket="sweep-bucket")
    return "sweep-bucket"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_sweep_writes_table_json_and_charts_and_keeps_a_failed_point(
        tmp_path: Path, photos: Path, logits_model: Path, moto_url: str, bucket: str,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    code = main(["serverless", "sweep", "--model", DEMO, "--backend", "onnxruntime",
                 "--memory-mb", "768,64,1769", "--functions", "local", "--bucket", bucket,
                 "--storage-endpoint", moto_url, "--model-path", str(logits_model),
                 "--dataset-path", str(photos), "--scenario", "SingleStream",
                 "--scenario", "Offline", "--mode", "performance", "--duration-ms", "300",
                 "--out", str(out)])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 1, text[-3000:]  # the refused size fails the sweep, after the others ran
    assert "1 of 3 sweep point(s) failed or were not VALID: onnxruntime 64 MB" in captured.err
    data: dict[str, Any] = json.loads((out / "sweep.json").read_text())
    assert data["ok"] is False and data["memory_mb"] == [768, 64, 1769]
    points = {p["memory_mb"]: p for p in data["points"]}
    failed = points[64]
    assert failed["ok"] is False and failed["rows"] == []
    assert "64" in failed["error"] and "128" in failed["error"], failed["error"]
    for size in (768, 1769):
        point = points[size]
        assert point["ok"] is True and point["error"] is None, point
        rows = {r["scenario"]: r for r in point["rows"]}
        assert set(rows) == {"SingleStream", "Offline"}
        for row in rows.values():
            assert row["status"] == "VALID" and row["samples_failed"] == 0
            assert row["qps"] > 0 and 0 < row["p50_ms"] <= row["p90_ms"]
            assert row["run_id"].startswith("local-")
            fn = row["function"]
            assert fn["cold_load_model_ms"] > 0 and fn["warm_forward_ms"] > 0
            assert fn["cold_forward_ms"] > 0 and fn["warm_image_operations_ms"] > 0
            assert row["counts"]["fn_answers"] > 0 and row["counts"]["fn_failed"] == 0
        assert rows["Offline"]["qps_unit"] == "samples/s"
        assert rows["SingleStream"]["qps_unit"] == "queries/s"
        # each point is an ordinary run's results folder, its system named by its size
        record = Path(point["results_dir"]) / f"serverless-local-{size}mb" / DEMO / \
            "Offline" / "records" / "performance.json"
        assert json.loads(record.read_text())["sut_details"]["memory_mb"] == size
        # and its tests are in the point's results store, as sweep tests of serverless
        from mlperf_pilot.results.store import open_store

        stored = open_store(results_dir=Path(point["results_dir"])).select(kind="sweep")
        assert sorted((t.record.scenario.value, t.record.sut_kind) for t in stored) == [
            ("Offline", "serverless"), ("SingleStream", "serverless")]  # (and any attempts)
    # the table: every point, the refused one with its reason
    table = (out / "sweep.md").read_text()
    assert "| onnxruntime | 64 | - | - | - | - | - | FAILED |" in table
    for size in (768, 1769):
        row = points[size]["rows"][0]
        assert f"| onnxruntime | {size} | {row['scenario']} | performance | " \
               f"{row['qps']:.2f} " in table
    assert "cold load_model" in table
    # the charts: real PNGs, and the bars matplotlib drew are the measured numbers
    charts = {Path(c["file"]).name: c for c in data["charts"]}
    assert set(charts) == {"latency-singlestream.png", "qps-singlestream.png",
                           "latency-offline.png", "qps-offline.png",
                           "function-breakdown.png"}
    for name, chart in charts.items():
        width, height = _png_size(out / name)
        assert width >= 400 and height >= 300 and (out / name).stat().st_size > 5000
        assert str(out / name) in data["files"] and chart["unit"]
        assert chart["series"] and all(len(v) == len(chart["categories"])
                                       for v in chart["series"].values())
    ss = {r["memory_mb"]: r for p in data["points"] for r in p["rows"]
          if r["scenario"] == "SingleStream"}
    latency = charts["latency-singlestream.png"]
    assert latency["categories"] == ["768 MB", "64 MB", "1769 MB"]
    assert latency["series"]["onnxruntime p50"] == pytest.approx(
        [ss[768]["p50_ms"], None, ss[1769]["p50_ms"]])
    assert latency["series"]["onnxruntime p90"][2] == pytest.approx(ss[1769]["p90_ms"])
    offline = {r["memory_mb"]: r for p in data["points"] for r in p["rows"]
               if r["scenario"] == "Offline"}
    assert charts["qps-offline.png"]["series"]["onnxruntime"] == pytest.approx(
        [offline[768]["qps"], None, offline[1769]["qps"]])
    breakdown = charts["function-breakdown.png"]
    assert breakdown["categories"] == ["768 MB", "1769 MB"]  # from the SingleStream tests
    assert breakdown["series"]["cold load_model"] == pytest.approx(
        [ss[768]["function"]["cold_load_model_ms"], ss[1769]["function"]["cold_load_model_ms"]])
    assert breakdown["series"]["warm forward"][1] == pytest.approx(
        ss[1769]["function"]["warm_forward_ms"])
