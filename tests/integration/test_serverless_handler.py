"""The function's handler, in this process, against a real moto server: real S3 events
(from moto's own S3 → SQS notification), the outputs equal to the tool's onnxruntime
backend on the same samples, the request moved, and the failure paths each answered
with an ``ok: false`` output object (never a raise, never a made-up tensor)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.serverless import messages
from mlperf_pilot.serverless.package import stage_function
from mlperf_pilot.storage import file_sha256
from serverless_fn import (
    BUCKET,
    import_function,
    keys_under,
    next_events,
    notifying_bucket,
    put_request,
    put_samples,
    read_output,
    reference_outputs,
    s3_client,
    s3_event,
    sqs_client,
)


@pytest.fixture(scope="module")
def fn(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The staged function's handler module (what function.zip holds)."""
    return import_function(stage_function(tmp_path_factory.mktemp("function")))


@pytest.fixture
def demo_format() -> Any:
    return load_catalog().model("efficientnet-lite0-demo").format("onnx")


def _samples(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 224, 224), dtype=np.float32) for _ in range(count)]


_INSTANCES: list[Any] = []


@pytest.fixture(autouse=True)
def _settled() -> Any:
    """Every instance's moves done before the next test (they reuse keys like r/q0)."""
    yield
    while _INSTANCES:
        assert _INSTANCES.pop().settle()


def _instance(fn: Any, url: str, **settings: Any) -> Any:
    instance = fn.Instance(fn.Settings(**{"backend": "onnxruntime", "s3_endpoint": url,
                                          "threads": 1, **settings})).load()
    _INSTANCES.append(instance)
    return instance


def test_real_s3_events_are_answered_with_the_backends_outputs(
        fn: Any, moto_url: str, logits_model: Path, demo_format: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    s3, sqs = s3_client(moto_url), sqs_client(moto_url)
    queue = notifying_bucket(s3, sqs)
    sha = file_sha256(logits_model)
    model_key = messages.model_key(sha, "logits.onnx")
    s3.upload_file(str(logits_model), BUCKET, model_key)
    arrays = _samples(4)
    keys = put_samples(s3, "demo-3x224x224", arrays)
    # the module's own cold start, from the environment deploy sets
    for name, value in {"MLPERF_FN_BACKEND": "onnxruntime", "MLPERF_FN_BUCKET": BUCKET,
                        "MLPERF_FN_MODEL_KEY": model_key, "MLPERF_FN_S3_ENDPOINT": moto_url,
                        "MLPERF_FN_THREADS": "1", "MLPERF_FN_MEMORY_MB": "1536",
                        "MLPERF_FN_INSTANCE": "worker-0", "MLPERF_FN_OUTPUTS": "logits"}.items():
        monkeypatch.setenv(name, value)
    handler = importlib.reload(fn)
    _INSTANCES.append(handler.INSTANCE)
    assert handler.INSTANCE.load_error is None
    assert handler.INSTANCE.load_ms > 0

    first = put_request(s3, "run 1", "q 0", keys[:3], ["logits"])  # keys URL-encoded
    second = put_request(s3, "run 1", "q+1", keys[3:], [])  # no names: $MLPERF_FN_OUTPUTS
    events = next_events(sqs, queue, 3)
    assert events[0].get("Event") == "s3:TestEvent"
    assert handler.handler(events[0], None) == {"ok": True, "results": []}
    answers = [handler.handler(event, None) for event in events[1:]]
    assert all(a["ok"] for a in answers), answers
    assert {a["results"][0]["output"] for a in answers} == {first.output_key,
                                                           second.output_key}

    out = read_output(s3, first.output_key)
    assert out.ok and out.error_type is None
    assert (out.run_id, out.request_id) == ("run 1", "q 0")
    (logits,) = out.arrays()
    (expected,) = reference_outputs(logits_model, demo_format, np.stack(arrays[:3]))
    np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-6)
    assert [t["name"] for t in out.tensors] == ["logits"]
    later = read_output(s3, second.output_key)
    assert later.ok and [t["name"] for t in later.tensors] == ["logits"]
    np.testing.assert_allclose(later.arrays()[0], reference_outputs(
        logits_model, demo_format, np.stack(arrays[3:]))[0], rtol=1e-6, atol=1e-6)
    # exactly one cold answer per instance; the instance's load time in both
    assert sorted([out.cold, later.cold]) == [False, True]
    assert out.inf_perf.load_model == later.inf_perf.load_model > 0
    assert out.inf_perf.forward > 0 and out.inf_perf.image_operations > 0
    assert out.start_time <= out.finish_time
    assert (out.instance, out.memory_mb) == ("worker-0", 1536)
    assert handler.INSTANCE.settle()  # the moves happen after the answers
    assert keys_under(s3, "input/") == []
    assert keys_under(s3, "completed/") == sorted([first.completed_key, second.completed_key])


def test_an_engine_that_raises_is_an_error_output(fn: Any, moto_url: str,
                                                  failing_model: Path) -> None:
    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    blue = np.zeros((3, 224, 224), dtype=np.float32)
    blue[2] = 3.0  # mean blue over the failing model's threshold: an out-of-bounds Gather
    keys = put_samples(s3, "blue", [blue])
    request = put_request(s3, "r", "q0", keys, ["logits"])
    instance = _instance(fn, moto_url, model_dir=str(failing_model.parent),
                         model_file=failing_model.name)
    answer = instance.handle(s3_event(BUCKET, messages.input_key("r", "q0")))
    assert answer["ok"] is False
    out = read_output(s3, request.output_key)
    assert not out.ok and out.tensors == []
    assert out.error_type == "InvalidArgument" and "Gather" in (out.error_message or "")
    assert "\n" not in (out.error_message or "")
    assert out.error_message == answer["results"][0]["error"]
    assert instance.settle()
    assert keys_under(s3, "completed/") == [request.completed_key]


def test_a_malformed_request_is_answered_at_its_derived_keys(fn: Any, moto_url: str,
                                                            logits_model: Path) -> None:
    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="p/input/r/bad.json", Body=b"{not json")
    s3.put_object(Bucket=BUCKET, Key="p/input/r/old.json",
                  Body=b'{"version": 0, "run_id": "r", "request_id": "old"}')
    instance = _instance(fn, moto_url, model_dir=str(logits_model.parent),
                         model_file=logits_model.name)
    for name in ("bad", "old"):
        answer = instance.handle(s3_event(BUCKET, f"p/input/r/{name}.json"))
        assert answer["ok"] is False
        out = read_output(s3, f"p/output/r/{name}.json")
        assert not out.ok and out.error_type == "MessageError"
        assert (out.run_id, out.request_id) == ("r", name)
    assert instance.settle()
    assert keys_under(s3, "p/completed/") == ["p/completed/r/bad.json",
                                              "p/completed/r/old.json"]
    assert keys_under(s3, "p/input/") == []


def test_a_missing_sample_is_an_error_output(fn: Any, moto_url: str, logits_model: Path
                                             ) -> None:
    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    request = put_request(s3, "r", "q0", [messages.sample_key("none", 7)], ["logits"])
    instance = _instance(fn, moto_url, model_dir=str(logits_model.parent),
                         model_file=logits_model.name)
    instance.handle(s3_event(BUCKET, messages.input_key("r", "q0")))
    out = read_output(s3, request.output_key)
    assert not out.ok and out.error_type == "NoSuchKey"


def test_a_model_that_did_not_load_fails_every_request_with_the_cause(
        fn: Any, moto_url: str, tmp_path: Path) -> None:
    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    keys = put_samples(s3, "d", _samples(1))
    instance = _instance(fn, moto_url, model_dir=str(tmp_path), model_file="absent.onnx")
    assert instance.load_error is not None
    for request_id in ("q0", "q1"):
        request = put_request(s3, "r", request_id, keys, ["logits"])
        instance.handle(s3_event(BUCKET, messages.input_key("r", request_id)))
        out = read_output(s3, request.output_key)
        assert not out.ok and out.error_type == "ModelLoadError"
        assert "absent.onnx" in (out.error_message or "")


def test_the_null_engine_answers_zeros_without_a_model(fn: Any, moto_url: str) -> None:
    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    keys = put_samples(s3, "d", _samples(2))
    request = put_request(s3, "r", "q0", keys, ["a", "b"])
    instance = _instance(fn, moto_url, backend="null")
    assert instance.handle(s3_event(BUCKET, messages.input_key("r", "q0")))["ok"]
    out = read_output(s3, request.output_key)
    assert [t["name"] for t in out.tensors] == ["a", "b"]
    assert all(a.shape == (2, 1) and not a.any() for a in out.arrays())


def test_an_output_that_cannot_be_written_raises(fn: Any, moto_url: str,
                                                 logits_model: Path) -> None:
    """The one case the host cannot be told through the bucket: the bucket is gone."""
    instance = _instance(fn, moto_url, model_dir=str(logits_model.parent),
                         model_file=logits_model.name)
    with pytest.raises(Exception) as caught:
        instance.handle(s3_event("no-such-bucket", messages.input_key("r", "q0")))
    assert type(caught.value).__name__ == "NoSuchBucket"


def test_a_repeated_event_leaves_the_answer_alone(fn: Any, moto_url: str, logits_model: Path
                                                  ) -> None:
    """S3 delivers events at least once: the second delivery finds the request moved and
    the output there, and neither overwrites it nor fails it."""
    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    request = put_request(s3, "r", "q0", put_samples(s3, "d", _samples(1)), ["logits"])
    instance = _instance(fn, moto_url, model_dir=str(logits_model.parent),
                         model_file=logits_model.name)
    event = s3_event(BUCKET, messages.input_key("r", "q0"))
    assert instance.handle(event)["ok"]
    assert instance.settle()
    first = s3.get_object(Bucket=BUCKET, Key=request.output_key)["Body"].read()
    again = instance.handle(event)
    assert again["ok"] and again["results"][0]["repeated"] is True
    assert s3.get_object(Bucket=BUCKET, Key=request.output_key)["Body"].read() == first
    # a request that never was there: answered with the error at its derived key
    assert not instance.handle(s3_event(BUCKET, messages.input_key("r", "ghost")))["ok"]
    ghost = read_output(s3, messages.output_key("r", "ghost"))
    assert not ghost.ok and ghost.error_type == "NoSuchKey"


def _put_inline(s3: Any, run_id: str, request_id: str, sample_keys: list[str],
                batch: np.ndarray, outputs: list[str]) -> messages.Request:
    request = messages.Request(
        run_id=run_id, request_id=request_id, sample_keys=sample_keys,
        output_key=messages.output_key(run_id, request_id),
        completed_key=messages.completed_key(run_id, request_id), outputs=outputs)
    s3.put_object(Bucket=BUCKET, Key=messages.input_key(run_id, request_id),
                  Body=request.to_bytes(batch))
    return request


def test_a_request_carrying_its_samples_reads_no_dataset_object(
        fn: Any, moto_url: str, logits_model: Path, demo_format: Any) -> None:
    """The samples inside the request: the named dataset objects are not even there,
    the answer equals the backend's on the same batch, and completed/ gets the request's
    JSON line (not its samples)."""
    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    batch = np.stack(_samples(3, seed=5))
    names = [messages.sample_key("never-uploaded", i) for i in range(3)]
    request = _put_inline(s3, "r", "q0", names, batch, ["logits"])
    instance = _instance(fn, moto_url, model_dir=str(logits_model.parent),
                         model_file=logits_model.name)
    answer = instance.handle(s3_event(BUCKET, messages.input_key("r", "q0")))
    assert answer["ok"], answer
    out = read_output(s3, request.output_key)
    (expected,) = reference_outputs(logits_model, demo_format, batch)
    np.testing.assert_allclose(out.arrays()[0], expected, rtol=1e-6, atol=1e-6)
    assert out.inf_perf.image_operations > 0  # the request's read, which carried them
    assert keys_under(s3, "datasets/") == []
    assert instance.settle()
    assert keys_under(s3, "input/") == []
    moved = s3.get_object(Bucket=BUCKET, Key=request.completed_key)["Body"].read()
    assert messages.Request.from_json(moved).inline == {"dtype": "<f4",
                                                        "shape": [3, 3, 224, 224]}
    assert len(moved) < 2000


def test_a_request_whose_inline_bytes_do_not_match_is_a_message_error(
        fn: Any, moto_url: str) -> None:
    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    request = messages.Request(run_id="r", request_id="short", sample_keys=["a", "b"],
                               output_key=messages.output_key("r", "short"),
                               completed_key=messages.completed_key("r", "short"))
    body = request.to_bytes(np.zeros((2, 4), dtype=np.float32))
    s3.put_object(Bucket=BUCKET, Key=messages.input_key("r", "short"), Body=body[:-4])
    instance = _instance(fn, moto_url, backend="null")
    assert not instance.handle(s3_event(BUCKET, messages.input_key("r", "short")))["ok"]
    out = read_output(s3, request.output_key)
    assert not out.ok and out.error_type == "MessageError"
    assert "28 bytes of samples for (2, 4)" in (out.error_message or "")
