"""The function as a real Lambda function: the real runtime client (``awslambdaric``) runs
the unzipped function.zip, on the unzipped runtime layer (as Lambda's /opt/python), against
the tests' own Lambda Runtime API server (tests/servers/lambda_runtime_api.py), with the
model downloaded from moto at its cold start; S3 events for request objects in moto, and
the output objects must appear there with the onnxruntime backend's tensors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.cli.main import main
from serverless_fn import (
    BUCKET,
    keys_under,
    put_request,
    put_samples,
    read_output,
    reference_outputs,
    s3_client,
    s3_event,
)

pytest.importorskip("awslambdaric")
SERVER = Path(__file__).parents[1] / "servers" / "lambda_runtime_api.py"


@pytest.fixture(scope="module")
def unzipped(tmp_path_factory: pytest.TempPathFactory, logits_model: Path,
             layer_cache: Path) -> dict[str, Any]:
    """The package of the demo card with the tiny model, unzipped as Lambda lays it out:
    the task root and /opt (the layers)."""
    out = tmp_path_factory.mktemp("package")
    cache = layer_cache
    assert main(["serverless", "package", "--backend", "onnxruntime", "--model-path",
                 str(logits_model), "--no-model-layer", "--out", str(out),
                 "--cache-dir", str(cache)]) == 0
    task, opt = out / "task", out / "opt"
    with zipfile.ZipFile(out / "function.zip") as zf:
        zf.extractall(task)
    with zipfile.ZipFile(out / "layers/runtime.zip") as zf:
        zf.extractall(opt)
    manifest = json.loads((out / "manifest.json").read_text())
    return {"task": task, "opt": opt, "manifest": manifest}


class RuntimeApi:
    """The Runtime API server subprocess, and the awslambdaric process polling it."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.server = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
        self.port = int(self.server.stdout.readline())  # type: ignore[union-attr]
        self.function: subprocess.Popen[bytes] | None = None

    def start_function(self, task: Path, opt: Path, env: dict[str, str]) -> None:
        environment = {**os.environ, **env,
                       "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.port}",
                       "LAMBDA_TASK_ROOT": str(task),
                       "PYTHONPATH": os.pathsep.join([str(task), str(opt / "python")]),
                       "AWS_LAMBDA_FUNCTION_NAME": "mlperf-pilot-test",
                       "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                       "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2240",
                       "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/mlperf-pilot-test",
                       "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/02/[$LATEST]instance-a"}
        self.function_log = self.log_dir / "function.log"
        with open(self.function_log, "wb") as log:
            self.function = subprocess.Popen(
                [sys.executable, "-m", "awslambdaric", "mlperf_pilot_fn.handler.handler"],
                cwd=task, env=environment, stdout=log, stderr=subprocess.STDOUT)

    def invoke(self, event: Any, timeout_s: float = 120.0) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/test/invoke?timeout_s={timeout_s}",
            data=json.dumps(event).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=timeout_s + 10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        for process in (self.function, self.server):
            if process is not None and process.poll() is None:
                os.kill(process.pid, 15)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def runtime_api(tmp_path: Path):  # -> Iterator[RuntimeApi]
    api = RuntimeApi(tmp_path)
    try:
        yield api
    finally:
        api.stop()


def test_awslambdaric_runs_the_unzipped_function_on_s3_events(
        unzipped: dict[str, Any], runtime_api: RuntimeApi, moto_url: str,
        logits_model: Path) -> None:
    manifest = unzipped["manifest"]
    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(logits_model), BUCKET, manifest["model"]["key"])
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((3, 224, 224), dtype=np.float32) for _ in range(5)]
    keys = put_samples(s3, "demo", arrays)
    env = {**manifest["environment"], "MLPERF_FN_BUCKET": BUCKET,
           "MLPERF_FN_MODEL_KEY": manifest["model"]["key"], "MLPERF_FN_S3_ENDPOINT": moto_url,
           "MLPERF_FN_THREADS": "1", "MLPERF_FN_TMP": str(runtime_api.log_dir / "tmp")}
    runtime_api.start_function(unzipped["task"], unzipped["opt"], env)

    fmt = load_catalog().model("efficientnet-lite0-demo").format("onnx")
    requests = [put_request(s3, "run-a", "q0", keys[:4], ["logits"]),
                put_request(s3, "run-a", "q1", keys[4:], ["logits"])]
    started = time.perf_counter()
    answers = [runtime_api.invoke(s3_event(BUCKET, f"input/run-a/{r.request_id}.json"))
               for r in requests]
    elapsed = time.perf_counter() - started
    log = runtime_api.function_log.read_text(errors="replace")
    assert all(a["outcome"] == "response" for a in answers), (answers, log[-2000:])
    assert [a["payload"]["ok"] for a in answers] == [True, True]
    outputs = [read_output(s3, r.output_key) for r in requests]
    for request, out, batch in zip(requests, outputs, (arrays[:4], arrays[4:]), strict=True):
        (expected,) = reference_outputs(logits_model, fmt, np.stack(batch))
        np.testing.assert_allclose(out.arrays()[0], expected, rtol=1e-6, atol=1e-6)
        assert out.request_id == request.request_id
    assert [o.cold for o in outputs] == [True, False]
    assert {o.instance for o in outputs} == {"2026/12/02/[$LATEST]instance-a"}
    assert {o.memory_mb for o in outputs} == {2240}
    # the instance moves answered requests after answering: wait for its mover
    deadline = time.monotonic() + 20
    while keys_under(s3, "input/") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert keys_under(s3, "input/") == []
    assert keys_under(s3, "completed/run-a/") == [r.completed_key for r in requests]
    # the model came from the bucket, into $MLPERF_FN_TMP
    assert list((runtime_api.log_dir / "tmp").rglob("logits.onnx"))
    assert elapsed < 60


def test_an_event_it_cannot_answer_comes_back_through_the_error_route(
        unzipped: dict[str, Any], runtime_api: RuntimeApi, moto_url: str) -> None:
    """No bucket to write the output into: the handler raises, and awslambdaric posts
    the exception to /invocation/{id}/error; the next event is served after it."""
    env = {**unzipped["manifest"]["environment"], "MLPERF_FN_BACKEND": "null",
           "MLPERF_FN_S3_ENDPOINT": moto_url}
    runtime_api.start_function(unzipped["task"], unzipped["opt"], env)
    answer = runtime_api.invoke(s3_event("no-such-bucket", "input/r/q0.json"))
    assert answer["outcome"] == "error", answer
    assert answer["payload"]["errorType"] == "NoSuchBucket"
    assert answer["payload"]["errorMessage"]
    # the same instance goes on: a test event is ignored with an ok answer
    again = runtime_api.invoke({"Event": "s3:TestEvent", "Bucket": BUCKET})
    assert again["outcome"] == "response" and again["payload"] == {"ok": True, "results": []}
