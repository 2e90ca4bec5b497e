"""The function's event parsing, key derivation and settings (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlperf_pilot.serverless.package import function_environment, model_files, stage_function
from serverless_fn import import_function, s3_event


@pytest.fixture(scope="module")
def fn(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return import_function(stage_function(tmp_path_factory.mktemp("function")))


def test_s3_records_give_decoded_keys_and_test_events_nothing(fn: Any) -> None:
    event = s3_event("b", "input/run 1/q+1.json")
    assert event["Records"][0]["s3"]["object"]["key"] == "input%2Frun+1%2Fq%2B1.json"
    assert fn.object_refs(event) == [("b", "input/run 1/q+1.json")]
    assert fn.object_refs({"Event": "s3:TestEvent", "Bucket": "b"}) == []
    assert fn.object_refs("not an event") == []
    assert fn.object_refs({"Records": [{"eventSource": "aws:s3"}, 7]}) == []


def test_sqs_records_carrying_s3_events_are_unwrapped(fn: Any) -> None:
    sqs = {"Records": [
        {"eventSource": "aws:sqs", "body": json.dumps(s3_event("b", "input/r/a.json"))},
        {"eventSource": "aws:sqs", "body": json.dumps({"Event": "s3:TestEvent"})},
        {"eventSource": "aws:sqs", "body": "{broken"},
        {"eventSource": "aws:sqs", "body": json.dumps(s3_event("b", "input/r/b.json"))}]}
    assert fn.object_refs(sqs) == [("b", "input/r/a.json"), ("b", "input/r/b.json")]


@pytest.mark.parametrize(("key", "expected"), [
    ("input/r/q0.json", ("r", "q0", "output/r/q0.json", "completed/r/q0.json")),
    ("pre/fix/input/r/q0.json", ("r", "q0", "pre/fix/output/r/q0.json",
                                 "pre/fix/completed/r/q0.json")),
    ("other/r/q0.json", ("r", "q0", None, None)),
    ("q0.json", ("", "q0", None, None)),
])
def test_output_keys_derive_from_the_input_key(fn: Any, key: str, expected: tuple) -> None:
    assert fn.derived_keys(key) == expected


def test_settings_come_from_the_environment(fn: Any) -> None:
    settings = fn.Settings.from_env({
        "MLPERF_FN_BACKEND": "openvino", "MLPERF_FN_MODEL_FILE": "m.xml",
        "MLPERF_FN_THREADS": "2", "MLPERF_FN_OUTPUTS": "a,b",
        "MLPERF_FN_OPTIONS": '{"performance_hint": "throughput"}',
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"})
    assert (settings.backend, settings.model_file, settings.threads) == ("openvino", "m.xml", 2)
    assert settings.outputs == ("a", "b") and settings.memory_mb == 3008
    assert dict(settings.options) == {"performance_hint": "throughput"}
    assert settings.model_dir == "/opt/python/mlperf_pilot_model" and not settings.model_key
    with pytest.raises(ValueError, match="JSON object"):
        fn.Settings.from_env({"MLPERF_FN_OPTIONS": "[1]"})


def test_the_package_knows_the_environment_and_the_companion_files(tmp_path: Path) -> None:
    from mlperf_pilot.catalog import load_catalog

    catalog = load_catalog()
    ssd = catalog.model("ssd-mobilenet").format("tensorflow")
    env = function_environment("opencv", ssd, "frozen_inference_graph.pb")
    assert env["MLPERF_FN_INPUT_LAYOUT"] == "NHWC"  # image_tensor:0 is (N, 300, 300, 3)
    assert env["MLPERF_FN_OUTPUTS"].split(",")[0] == "num_detections:0"
    demo = catalog.model("efficientnet-lite0-demo").format("openvino")
    assert "MLPERF_FN_INPUT_LAYOUT" not in function_environment("openvino", demo, "x.xml")
    (tmp_path / "m.xml").write_text("x")
    (tmp_path / "m.bin").write_text("y")
    (tmp_path / "n.prototxt").write_text("x")
    assert [p.name for p in model_files(tmp_path / "m.xml")] == ["m.xml", "m.bin"]
    assert [p.name for p in model_files(tmp_path / "n.prototxt")] == ["n.prototxt"]


def test_a_request_carries_its_samples_after_its_json_line() -> None:
    import numpy as np

    from mlperf_pilot.serverless import messages

    request = messages.Request(run_id="r", request_id="q0", sample_keys=["d/0.npy", "d/1.npy"],
                               output_key="output/r/q0.json",
                               completed_key="completed/r/q0.json", outputs=["logits"])
    batch = np.arange(2 * 3 * 2, dtype=">f4").reshape(2, 3, 2)  # big-endian in, little out
    body = request.to_bytes(batch)
    head, _, tail = body.partition(b"\n")
    assert json.loads(head)["inline"] == {"dtype": "<f4", "shape": [2, 3, 2]}
    assert len(tail) == batch.nbytes
    parsed, samples = messages.Request.parse(body)
    assert parsed.sample_keys == request.sample_keys and parsed.outputs == ["logits"]
    assert samples is not None and samples.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(samples, batch)
    assert messages.Request.from_json(body).request_id == "q0"
    # without samples: the JSON alone, in any layout (a pretty-printed one too)
    plain = messages.Request(run_id="r", request_id="q1", sample_keys=["d/0.npy"],
                             output_key="o", completed_key="c")
    assert messages.Request.parse(plain.to_bytes()) == (plain, None)
    pretty = json.dumps(json.loads(plain.to_json()), indent=2)
    assert messages.Request.parse(pretty)[0] == plain
    with pytest.raises(messages.MessageError, match="not JSON"):
        messages.Request.parse(plain.to_json() + b"\nnot json")
    with pytest.raises(messages.MessageError, match="names 1 sample"):
        messages.Request.parse(plain.to_bytes(np.zeros((2, 1), dtype=np.uint8)))
