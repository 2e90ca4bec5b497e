"""``mlperf-pilot run --sut serverless --functions local`` end to end on a real moto server
(S3 + SQS notifications, tests/servers/moto_server.py) with the real handler in the local
function pool, and the pool itself on the failure paths.

The demo card (efficientnet-lite0-demo) runs a tiny real ONNX model with its interface
(tests/builders.py) on 16 colour photos, 3 labelled wrong (top-1 81.25%), so a decoding
difference would show; each LoadGen test is short (300 ms). The misbehaving handler
(tests/servers/functions/misbehaving_fn.py) raises, hangs, dies or eats memory on
purpose.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from builders import make_imagenet_folder
from cli_runner import Cli

DEMO = "efficientnet-lite0-demo"
SYSTEM = "serverless-local-1769mb"
LOCAL_SYSTEM = "onnxruntime-cpu"
FAST = ("--duration-ms", "300")
KEY_ID, SECRET = "AKIAMLPERFPILOT7Q2X", "sEcReT-9f3c1e77d2b84a55-never-written"
FUNCTIONS = Path(__file__).resolve().parents[1] / "servers" / "functions"
MISBEHAVING = ("--set", "sut.function_handler=misbehaving_fn.handler",
               "--set", f"sut.function_code={FUNCTIONS}")



@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    make_imagenet_folder(root, 16, wrong_labels=3)
    return root


def _s3(url: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name="us-east-1")


@pytest.fixture
def bucket(moto_url: str) -> str:
    _s3(moto_url).create_bucket(Bucket="lg-bucket")
    return "lg-bucket"


def _keys(url: str, name: str, prefix: str = "") -> list[str]:
    listed = _s3(url).list_objects_v2(Bucket=name, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def _record(results: Path, scenario: str, mode: str, system: str = SYSTEM) -> dict[str, Any]:
    path = results / system / DEMO / scenario / "records" / f"{mode}.json"
    found: dict[str, Any] = json.loads(path.read_text())
    return found


def _accuracy_txt(results: Path, scenario: str, system: str = SYSTEM) -> str:
    return (results / system / DEMO / scenario / "accuracy" / "accuracy.txt").read_text()


def _serverless(photos: Path, results: Path, model: Path, url: str, bucket: str,
                *more: object) -> tuple[object, ...]:
    return ("run", "--model", DEMO, "--dataset-path", photos, "--results-dir", results,
            "--model-path", model, "--sut", "serverless", "--bucket", bucket,
            "--storage-endpoint", url, "--functions", "local", *FAST, *more)


# ----------------------------------------------------------------------- the happy path


def test_local_functions_give_the_local_accuracy_and_valid_runs_and_leave_nothing(
        cli: Cli, tmp_path: Path, photos: Path, logits_model: Path, moto_url: str,
        bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)  # moto takes any: these must land nowhere
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    results = tmp_path / "res"
    # an earlier run's leftover request: its event must not trip this run
    _s3(moto_url).put_object(Bucket=bucket, Key="input/local-earlier/r0000000.json",
                             Body=b"{}")
    local = cli("run", "--model", DEMO, "--dataset-path", photos, "--results-dir", results,
                "--model-path", logits_model, "--scenario", "Offline", "--mode", "accuracy",
                *FAST)
    assert local.code == 0, local.text[-3000:]
    remote = cli(*_serverless(photos, results, logits_model, moto_url, bucket, "--json"))
    assert remote.code == 0, remote.text[-3000:]
    summary = json.loads(remote.out)
    assert [(r["scenario"], r["mode"], r["status"]) for r in summary["records"]] == [
        ("Offline", "accuracy", "VALID"), ("Offline", "performance", "VALID"),
        ("SingleStream", "accuracy", "VALID"), ("SingleStream", "performance", "VALID")]
    expected = _accuracy_txt(results, "Offline", LOCAL_SYSTEM)
    assert expected.startswith("accuracy=81.250%, good=13, total=16")
    for scenario in ("Offline", "SingleStream"):
        assert _accuracy_txt(results, scenario) == expected
    offline = _record(results, "Offline", "performance")
    assert offline["metric_unit"] == "Samples/s" and offline["metric_value"] > 0
    assert offline["sut_kind"] == "serverless" and offline["backend"] == "onnxruntime"
    assert offline["device_in_use"] == "local functions (1769 MB)"
    details = offline["sut_details"]
    assert (details["bucket"], details["storage_endpoint"], details["functions"]) == (
        bucket, moto_url, "local")
    assert details["memory_mb"] == 1769 and details["concurrency"] == 2
    assert details["local_instances"] == 2 and details["fn_warmup_cold_starts"] == 2
    assert details["fn_answers"] > 0 and details["fn_failed"] == 0
    # batches of up to 8 MB travel inside their requests (the default)
    assert details["inline_samples_mb"] == 8 and details["requests_inline"] > 0
    assert details["fn_forward_ms"] > 0 and details["fn_load_model_ms"] > 0
    assert details["local_memory_limit"] in ("cgroup", "rlimit_as")
    assert details["local_cpu_share"] in ("cgroup_quota", "threads")
    single = _record(results, "SingleStream", "performance")
    assert single["metric_unit"] == "ms" and single["sut_details"]["concurrency"] == 1
    run_ids = {_record(results, s, m)["sut_details"]["run_id"]
               for s in ("Offline", "SingleStream") for m in ("accuracy", "performance")}
    assert len(run_ids) == 4 and all(r.startswith("local-") for r in run_ids)
    # each test cleaned its prefix: only the model, the samples and the leftover remain
    left = [k for k in _keys(moto_url, bucket)
            if not k.startswith(("models/", "datasets/"))]
    assert left == ["input/local-earlier/r0000000.json"]
    written = [p for p in results.rglob("*") if p.is_file()]
    assert len(written) > 20
    for path in written:  # records, run specs, LoadGen's logs: no credential anywhere
        data = path.read_bytes()
        assert SECRET.encode() not in data and KEY_ID.encode() not in data, path
    assert SECRET not in remote.text and KEY_ID not in remote.text


def test_without_inline_samples_the_function_reads_them_from_the_bucket(
        cli: Cli, tmp_path: Path, photos: Path, logits_model: Path, moto_url: str,
        bucket: str) -> None:
    results = tmp_path / "res"
    result = cli(*_serverless(photos, results, logits_model, moto_url, bucket,
                              "--inline-samples-mb", "0", "--scenario", "SingleStream",
                              "--mode", "accuracy"))
    assert result.code == 0, result.text[-3000:]
    assert _accuracy_txt(results, "SingleStream").startswith(
        "accuracy=81.250%, good=13, total=16")
    details = _record(results, "SingleStream", "accuracy")["sut_details"]
    assert details["inline_samples_mb"] == 0 and details["requests_inline"] == 0
    assert details["fn_answers"] == 16 and details["fn_image_operations_ms"] > 0


# ------------------------------------------------------------------------ failure paths


def test_a_function_that_raises_makes_the_run_invalid_with_its_error(
        cli: Cli, tmp_path: Path, photos: Path, logits_model: Path, moto_url: str,
        bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPERF_TEST_FN_MODE", "raise")
    results = tmp_path / "res"
    result = cli(*_serverless(photos, results, logits_model, moto_url, bucket, *MISBEHAVING,
                              "--scenario", "Offline", "--mode", "performance"))
    assert result.code == 1, result.text[-3000:]
    assert "Traceback" not in result.text
    record = _record(results, "Offline", "performance")
    assert record["status"] == "INVALID" and record["samples_failed"] > 0
    reason = next(r for r in record["reasons"] if "sample(s) failed" in r)
    assert "RuntimeError: the test function fails on purpose (instance local-" in reason
    assert not [k for k in _keys(moto_url, bucket) if k.startswith(("input/", "output/"))]


def test_a_function_that_never_answers_times_out_and_the_run_is_invalid(
        cli: Cli, tmp_path: Path, photos: Path, logits_model: Path, moto_url: str,
        bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPERF_TEST_FN_MODE", "hang")
    results = tmp_path / "res"
    started = time.monotonic()
    result = cli(*_serverless(photos, results, logits_model, moto_url, bucket, *MISBEHAVING,
                              "--scenario", "SingleStream", "--mode", "accuracy",
                              "--request-timeout-ms", "800"))
    assert result.code == 1, result.text[-3000:]
    assert time.monotonic() - started < 60
    record = _record(results, "SingleStream", "accuracy")
    assert record["status"] == "INVALID" and record["samples_failed"] > 0
    reason = next(r for r in record["reasons"] if "sample(s) failed" in r)
    assert "SutTimeoutError: request r" in reason and "no output within 800 ms" in reason
    assert not [k for k in _keys(moto_url, bucket) if k.startswith(("input/", "output/"))]


def test_a_bucket_that_does_not_exist_is_one_config_error(
        cli: Cli, tmp_path: Path, photos: Path, logits_model: Path, moto_url: str) -> None:
    result = cli(*_serverless(photos, tmp_path / "res", logits_model, moto_url, "no-such-bkt"))
    assert result.code == 2, result.text[-3000:]
    assert "Traceback" not in result.text
    assert result.errors() == [f"error: the bucket 'no-such-bkt' does not exist at {moto_url}"]
    assert not list((tmp_path / "res").rglob("records/*.json"))


def test_missing_credentials_are_one_config_error(
        cli: Cli, tmp_path: Path, photos: Path, logits_model: Path, moto_url: str,
        bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    result = cli(*_serverless(photos, tmp_path / "res", logits_model, moto_url, bucket))
    assert result.code == 2, result.text[-3000:]
    assert "Traceback" not in result.text
    assert len(result.errors()) == 1 and "no AWS credentials" in result.errors()[0]


def test_aws_functions_need_a_deployed_function_of_that_memory_size(
        cli: Cli, tmp_path: Path, photos: Path, logits_model: Path, moto_url: str,
        bucket: str) -> None:
    argv = list(_serverless(photos, tmp_path / "res", logits_model, moto_url, bucket))
    argv[argv.index("--functions") + 1] = "aws"
    result = cli(*argv, "--memory-mb", "1536")
    assert result.code == 2, result.text[-3000:]
    assert result.errors() == [f"error: no function of 1536 MB is triggered by "
                               f"s3://{bucket}/input/m1536-"]
    assert "serverless deploy --bucket lg-bucket --memory-mb 1536" in result.err


def test_serverless_settings_need_a_bucket() -> None:
    from mlperf_pilot.config import build_run_spec
    from mlperf_pilot.errors import ConfigError

    spec = build_run_spec([{"sut": {"kind": "serverless", "functions": "local",
                                    "memory_mb": 3008, "concurrency": 2}}])
    assert spec.sut.layout("Offline", 2, parallel=True) == (2, 2)  # 3008 MB: 1.7 vCPU
    with pytest.raises(ConfigError, match="memory_mb"):
        build_run_spec([{"sut": {"kind": "serverless", "memory_mb": 64}}])
    from mlperf_pilot.catalog import load_catalog
    from mlperf_pilot.sut.serverless_kind import ServerlessKind

    catalog = load_catalog()
    with pytest.raises(ConfigError, match="needs --bucket"):
        ServerlessKind.plan(spec, catalog.model(DEMO), catalog)


# ---------------------------------------------------------------- the pool on its own


def _wait_output(queue: Any, key: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(event.key == key for event in queue.receive(wait_s=1)):
            return
    raise AssertionError(f"no output event for {key} within {timeout_s} s")


def test_the_pool_answers_malformed_requests_dead_and_oversized_instances(
        moto_url: str) -> None:
    from mlperf_pilot.serverless import messages
    from mlperf_pilot.serverless.aws import Aws, AwsTarget
    from mlperf_pilot.serverless.bucket import Bucket
    from mlperf_pilot.serverless.local_functions import LocalFunctionPool

    aws = Aws(AwsTarget(endpoint_url=moto_url))
    bucket = Bucket(aws, "pool-bucket")
    bucket.create()
    inputs, outputs = bucket.ensure_local_input_queue(), bucket.ensure_output_queue()
    pool = LocalFunctionPool(
        bucket=bucket, events=inputs, instances=1, memory_mb=256, threads=1,
        environment={"MLPERF_FN_BACKEND": "null", "MLPERF_FN_S3_ENDPOINT": moto_url},
        function_name="pool-test", request_timeout_ms=10_000,
        handler="misbehaving_fn.handler", extra_code=[FUNCTIONS])
    run = "local-pooltest"
    pool.serve(run)
    pool.start()
    try:
        first = pool.pids()
        answers = {}
        for name, body in (("bad", b"{not json"), ("exit-1", b"{}"), ("hog-1", b"{}"),
                           ("raise-1", b"{}")):
            bucket.put(messages.input_key(run, name), body)
            _wait_output(outputs, messages.output_key(run, name))
            data = bucket.get(messages.output_key(run, name))
            assert data is not None
            answers[name] = messages.Output.from_json(data)
        assert pool.pids() and pool.pids() != first  # a dead instance is started again
    finally:
        pool.stop()
    assert pool.pids() == []
    bad = answers["bad"]
    assert not bad.ok and bad.error_type == "MessageError" and "not JSON" in bad.error_message
    assert bad.cold and bad.instance.startswith("local-0")
    died = answers["exit-1"]
    assert (died.ok, died.error_type) == (False, "Runtime.ExitError")
    assert "exit code 3" in died.error_message
    hog = answers["hog-1"]
    assert (hog.ok, hog.error_type) == (False, "Runtime.OutOfMemory")
    assert "256 MB" in hog.error_message or "MemoryError" in hog.error_message
    raised = answers["raise-1"]
    assert (raised.error_type, raised.error_message) == (
        "RuntimeError", "the test function fails on purpose")
    assert bucket.clean_run(run) >= 4
    assert not list(bucket.keys("input/")) and not list(bucket.keys("output/"))


def test_without_writable_cgroups_the_memory_size_is_an_rlimit_and_threads(
        tmp_path: Path) -> None:
    from mlperf_pilot.serverless.local_functions import Confinement

    confined = Confinement.choose(3008, 2, name="mlperf-pilot-1-x", root=tmp_path)
    assert (confined.memory, confined.cpu, confined.threads) == ("rlimit_as", "threads", 2)
    assert confined.instance_cgroups(0) == {}
    assert confined.words() == ("3008 MB as RLIMIT_AS (address space); CPU share as 2 engine "
                                "thread(s) (no writable cgroup CPU controller)")
