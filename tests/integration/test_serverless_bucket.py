"""The serverless bucket against a real moto server on 127.0.0.1: uploads by checksum,
S3 -> SQS notifications and their events, a run's clean-up, and the one-line errors
(no bucket, no credentials, an endpoint that does not answer, no boto3)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlperf_pilot.errors import ConfigError, MissingDependencyError, SutConnectionError
from mlperf_pilot.serverless import messages
from mlperf_pilot.serverless.aws import Aws, AwsTarget, import_boto3
from mlperf_pilot.serverless.bucket import (
    Bucket,
    Notification,
    new_run_id,
    parse_s3_events,
    queue_name,
    run_id_prefix,
)
from servers.moto_server import free_port


@pytest.fixture
def bucket(moto_url: str) -> Bucket:
    made = Bucket(Aws(AwsTarget(endpoint_url=moto_url)), "pilot-bucket")
    assert made.create() is True
    return made


def test_the_model_and_samples_are_uploaded_once_by_checksum(bucket: Bucket,
                                                             tmp_path: Path) -> None:
    model = tmp_path / "m.xml"
    model.write_bytes(b"<net/>")
    weights = tmp_path / "m.bin"
    weights.write_bytes(b"\x00" * 4096)
    keys, first = bucket.upload_model([model, weights])
    main_sha = bucket.sha256_of(keys[0])
    assert keys == [messages.model_key(main_sha, "m.xml"), messages.model_key(main_sha, "m.bin")]
    assert first.uploaded == keys and first.kept == []
    _, second = bucket.upload_model([model, weights])
    assert second.uploaded == [] and second.kept == keys
    assert bucket.get(keys[1]) == weights.read_bytes()

    samples = [(i, np.full((3, 4, 4), i, dtype=np.float32)) for i in range(12)]
    count = bucket.upload_samples("demo-224", samples)
    assert len(count.uploaded) == 12 and count.kept == []
    changed = [*samples[:11], (11, np.zeros((3, 4, 4), np.float32)), (12, samples[0][1])]
    count = bucket.upload_samples("demo-224", changed)
    assert sorted(count.uploaded) == [messages.sample_key("demo-224", 11),
                                      messages.sample_key("demo-224", 12)]
    assert len(count.kept) == 11
    import io

    stored = np.load(io.BytesIO(bucket.get(messages.sample_key("demo-224", 11))))
    assert stored.dtype == np.float32 and not stored.any()


def test_output_creations_reach_the_output_queue_with_decoded_keys(bucket: Bucket) -> None:
    queue = bucket.ensure_output_queue()
    assert queue.queue.name == queue_name("pilot-bucket", "output")
    assert queue.drain() >= 1  # moto's s3:TestEvent
    run = new_run_id("local")
    key = messages.output_key(run, "q 7+x")  # a space and a plus, URL-encoded by S3
    started = time.perf_counter()
    bucket.put(key, b"{}")
    events = []
    while not events and time.perf_counter() - started < 10:
        events = queue.receive(wait_s=2)
    assert [e.key for e in events] == [key]
    assert events[0].bucket == "pilot-bucket" and events[0].event_name == "ObjectCreated:Put"
    assert queue.receive(wait_s=0) == []  # received messages were deleted


def test_the_local_input_queue_gets_local_runs_only(bucket: Bucket) -> None:
    local = bucket.ensure_local_input_queue()
    local.drain()
    bucket.put(messages.input_key(f"{run_id_prefix('aws', 768)}x", "q0"), b"{}")
    local_run = new_run_id("local")
    bucket.put(messages.input_key(local_run, "q1"), b"{}")
    events = local.receive(wait_s=5)
    assert [e.key for e in events] == [messages.input_key(local_run, "q1")]


def test_notifications_of_others_are_kept_and_ours_are_idempotent(bucket: Bucket,
                                                                   moto_url: str) -> None:
    sqs = bucket.aws.sqs
    url = sqs.create_queue(QueueName="someone-else")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]
                                   )["Attributes"]["QueueArn"]
    foreign = Notification("their-own", "logs/", arn, "queue")
    bucket.aws.s3.put_bucket_notification_configuration(
        Bucket=bucket.name, NotificationConfiguration={"QueueConfigurations": [
            foreign.as_config()]})
    bucket.ensure_output_queue()
    assert bucket.set_notifications(bucket.notifications()) is False  # nothing to change
    config = bucket.aws.s3.get_bucket_notification_configuration(Bucket=bucket.name)
    ids = sorted(c["Id"] for c in config["QueueConfigurations"])
    assert ids == ["mlperf-pilot-output", "their-own"]
    assert bucket.set_notifications(remove_ids=["mlperf-pilot-output"]) is True
    assert bucket.notifications() == []
    config = bucket.aws.s3.get_bucket_notification_configuration(Bucket=bucket.name)
    assert [c["Id"] for c in config["QueueConfigurations"]] == ["their-own"]


def test_clean_run_removes_that_run_only(bucket: Bucket) -> None:
    mine, other = new_run_id("local"), new_run_id("aws", 1536)
    for run in (mine, other):
        bucket.put(messages.input_key(run, "q0"), b"{}")
        bucket.put(messages.output_key(run, "q0"), b"{}")
        bucket.put(messages.completed_key(run, "q1"), b"{}")
    bucket.put(messages.sample_key("ds", 0), b"npy")
    assert bucket.clean_run(mine) == 3
    left = sorted(bucket.keys(""))
    assert not [k for k in left if mine in k]
    assert len([k for k in left if other in k]) == 3 and messages.sample_key("ds", 0) in left
    with pytest.raises(ValueError):
        bucket.clean_run("")


def test_s3_event_bodies_parse_and_test_events_are_empty() -> None:
    body = {"Records": [{"eventName": "ObjectCreated:Put", "eventTime": "t",
                         "s3": {"bucket": {"name": "b"},
                                "object": {"key": "input%2Frun%2Fq+1.json", "size": 3}}}]}
    [event] = parse_s3_events(json.dumps(body))
    assert event.key == "input/run/q 1.json" and event.size == 3
    assert parse_s3_events('{"Service":"Amazon S3","Event":"s3:TestEvent"}') == []
    for bad in ("not json", "[]", '{"Records": [{"s3": {}}]}', "{}"):
        with pytest.raises(messages.MessageError):
            parse_s3_events(bad)


def test_a_missing_bucket_names_itself_and_deploy(moto_url: str) -> None:
    missing = Bucket(Aws(AwsTarget(endpoint_url=moto_url)), "never-made")
    with pytest.raises(ConfigError) as caught:
        missing.require()
    assert "never-made" in caught.value.message and "does not exist" in caught.value.message
    assert "mlperf-pilot serverless deploy --bucket never-made" in caught.value.hint
    assert caught.value.exit_code == 2


def test_missing_credentials_are_a_config_error(moto_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    bucket = Bucket(Aws(AwsTarget(endpoint_url=moto_url)), "pilot-bucket")
    with pytest.raises(ConfigError) as caught:
        bucket.require()
    assert "no AWS credentials" in caught.value.message
    assert "AWS_ACCESS_KEY_ID" in caught.value.hint and "\n" not in caught.value.message
    with pytest.raises(ConfigError, match="no usable AWS credentials"):
        bucket.exists()  # a call made anyway says the same


def test_an_unreachable_endpoint_is_a_config_error(aws_env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    bucket = Bucket(Aws(AwsTarget(endpoint_url=url, max_attempts=1)), "pilot-bucket")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        bucket.require()
    assert f"{url} cannot be reached" in caught.value.message
    assert "--endpoint-url" in caught.value.hint
    assert time.perf_counter() - started < 10
    in_run = Bucket(Aws(AwsTarget(endpoint_url=url, max_attempts=1)), "pilot-bucket",
                    connection_error=SutConnectionError)  # what a SUT mid-run passes
    with pytest.raises(SutConnectionError, match="cannot be reached"):
        in_run.get("output/run/q0.json")
    with pytest.raises(ConfigError, match="not valid"):
        Aws(AwsTarget(endpoint_url="not a url")).s3  # noqa: B018


def test_a_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # what `import boto3` meets uninstalled
    with pytest.raises(MissingDependencyError) as caught:
        import_boto3()
    assert caught.value.hint == "pip install 'mlperf-pilot[serverless]'"
