"""Helpers for the tests of the serverless function (its package, its handler in-process,
under the real Lambda runtime client): S3 objects in the messages' layout, real S3
events from moto's S3 → SQS notification, the staged function imported once."""

from __future__ import annotations

import io
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.serverless import messages

BUCKET = "mlperf-fn-test"


def s3_client(url: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name="us-east-1")


def sqs_client(url: str) -> Any:
    import boto3

    return boto3.client("sqs", endpoint_url=url, region_name="us-east-1")


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def put_samples(s3: Any, dataset_key: str, arrays: list[np.ndarray], bucket: str = BUCKET
                ) -> list[str]:
    keys = []
    for index, array in enumerate(arrays):
        key = messages.sample_key(dataset_key, index)
        s3.put_object(Bucket=bucket, Key=key, Body=npy_bytes(array))
        keys.append(key)
    return keys


def put_request(s3: Any, run_id: str, request_id: str, sample_keys: list[str],
                outputs: list[str], bucket: str = BUCKET) -> messages.Request:
    request = messages.Request(
        run_id=run_id, request_id=request_id, sample_keys=sample_keys,
        output_key=messages.output_key(run_id, request_id),
        completed_key=messages.completed_key(run_id, request_id), outputs=outputs)
    s3.put_object(Bucket=bucket, Key=messages.input_key(run_id, request_id),
                  Body=request.to_json())
    return request


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    """An S3 ObjectCreated:Put event as S3 sends it (the key URL-encoded)."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket},
               "object": {"key": urllib.parse.quote_plus(key), "size": 1}}}]}


def notifying_bucket(s3: Any, sqs: Any, bucket: str = BUCKET) -> str:
    """The bucket, with its input/ creations notified to a new SQS queue (moto's real
    notification path); the queue's first s3:TestEvent is left in it. Its URL."""
    s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=f"{bucket}-input")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url,
                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:Put"],
                                 "Filter": {"Key": {"FilterRules": [
                                     {"Name": "prefix", "Value": messages.INPUT}]}}}]})
    return queue_url


def next_events(sqs: Any, queue_url: str, count: int, timeout_s: float = 10.0
                ) -> list[dict[str, Any]]:
    """The next ``count`` event bodies of the queue, as the trigger would pass them."""
    import time

    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                     WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def read_output(s3: Any, key: str, bucket: str = BUCKET) -> messages.Output:
    return messages.Output.from_json(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_under(s3: Any, prefix: str, bucket: str = BUCKET) -> list[str]:
    found = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in found)


def import_function(folder: Path) -> Any:
    """``mlperf_pilot_fn.handler`` of the staged tree in ``folder`` (imported once per
    process; its module-level instance is whatever the environment said then)."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    import mlperf_pilot_fn.handler as handler

    return handler


def reference_outputs(model_path: Path, fmt: Any, batch: np.ndarray, backend: str = "onnxruntime",
                      threads: int = 1) -> list[np.ndarray]:
    """What the tool's own backend answers for ``batch`` (the function must agree)."""
    from mlperf_pilot.backends.load import load_model

    loaded = load_model(backend, fmt, model_path, threads=threads)
    try:
        return [np.asarray(a) for a in loaded.predict(batch)]
    finally:
        loaded.close()
