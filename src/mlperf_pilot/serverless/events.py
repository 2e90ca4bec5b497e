"""S3 event notifications as they arrive through SQS: the queues S3 notifies (made with
a policy letting the bucket send), receiving and draining them, and parsing the events.

    from mlperf_pilot.serverless.events import EventQueue, ensure_queue, parse_s3_events

    queue, created = ensure_queue(aws, "mlperf-pilot-b-output", bucket="b")
    events = EventQueue(aws, queue).receive(wait_s=1)   # [S3Event(key="output/r/q0.json")]

Consumers on a latency path (the SUT's receiver, the local pool's dispatcher) pass
``receive(defer_delete=True)``: the messages are then deleted by the queue's deleter
thread after the events were returned, in ``DeleteMessageBatch`` calls of up to ten
(those that arrived within :data:`DELETE_LINGER_S` of each other), instead of before
the caller could act on them; :meth:`EventQueue.close` deletes what is left.

moto's quirks are handled here: the ``s3:TestEvent`` a queue receives when a notification
is set up yields no event, and keys (URL-encoded by S3, ``/`` included) are decoded with
``unquote_plus``. :mod:`mlperf_pilot.serverless.bucket` re-exports every name.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

from mlperf_pilot.errors import ConfigError, MlperfPilotError, SutError
from mlperf_pilot.serverless import messages
from mlperf_pilot.serverless.aws import Aws, aws_errors, error_code

DELETE_LINGER_S = 0.25  # a deferred delete waits this long for others to batch with


@dataclass(frozen=True)
class S3Event:
    """One record of an S3 event notification, its key decoded."""

    bucket: str
    key: str  # decoded: "output/<run>/<request>.json" (moto sends "output%2F...")
    event_name: str  # "ObjectCreated:Put"
    size: int | None = None
    etag: str | None = None
    event_time: str = ""


def parse_s3_events(body: str | bytes) -> list[S3Event]:
    """The records of one SQS message body from an S3 notification; ``[]`` for the
    ``s3:TestEvent`` S3 sends when a notification is set up. MessageError when the body
    is not an S3 event."""
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise messages.MessageError(f"the queue message is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise messages.MessageError("the queue message is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records")
    if not isinstance(records, list):
        raise messages.MessageError("the queue message is not an S3 event (no Records)")
    events = []
    for record in records:
        try:
            s3 = record["s3"]
            key = urllib.parse.unquote_plus(s3["object"]["key"])
            events.append(S3Event(bucket=s3["bucket"]["name"], key=key,
                                  event_name=str(record.get("eventName", "")),
                                  size=s3["object"].get("size"),
                                  etag=s3["object"].get("eTag"),
                                  event_time=str(record.get("eventTime", ""))))
        except (KeyError, TypeError) as exc:
            raise messages.MessageError(f"an S3 event record lacks {exc}") from None
    return events


@dataclass(frozen=True)
class Queue:
    name: str
    url: str
    arn: str


class EventQueue:
    """An SQS queue that S3 notifies of object creations. Thread-safe (one boto3 client);
    several consumers of one queue each get different messages."""

    def __init__(self, aws: Aws, queue: Queue, *,
                 fallback: type[MlperfPilotError] = SutError,
                 connection_error: type[MlperfPilotError] = ConfigError) -> None:
        self.aws = aws
        self.queue = queue
        self.fallback = fallback
        self.connection_error = connection_error
        self.delete_error: str | None = None  # the deleter's last failure
        self._handles: list[str] = []  # received, to be deleted by the deleter
        self._cond = threading.Condition()
        self._closing = False
        self._deleter: threading.Thread | None = None

    def receive(self, wait_s: float = 1.0, max_events: int = 10, *,
                defer_delete: bool = False) -> list[S3Event]:
        """The S3 events of the messages that arrive within ``wait_s`` (SQS long poll,
        whole seconds 0-20; it returns as soon as one is there). Received messages are
        deleted before it returns, or with ``defer_delete`` by the deleter thread after
        (see the module doc); test events are dropped; a message that is not an S3 event
        is dropped too (MessageError is not raised: the queue belongs to the bucket)."""
        wait = max(0, min(20, int(-(-wait_s // 1))))
        with self._errors("receive from the event queue"):
            answer = self.aws.sqs.receive_message(
                QueueUrl=self.queue.url, MaxNumberOfMessages=max(1, min(10, max_events)),
                WaitTimeSeconds=wait)
        received = answer.get("Messages", [])
        events: list[S3Event] = []
        for message in received:
            try:
                events.extend(parse_s3_events(message.get("Body", "")))
            except messages.MessageError:
                continue
        if received and defer_delete:
            self._defer([m["ReceiptHandle"] for m in received])
        elif received:
            self._delete([m["ReceiptHandle"] for m in received])
        return events

    def close(self) -> None:
        """Delete the messages still waiting for the deleter, and end it."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._deleter
        if thread is not None:
            thread.join(timeout=30)
        with self._cond:
            left, self._handles = self._handles, []
            self._deleter, self._closing = None, False
        for first in range(0, len(left), 10):
            try:
                self._delete(left[first:first + 10])
            except Exception as exc:
                self.delete_error = getattr(exc, "message", None) or str(exc)

    def _defer(self, handles: list[str]) -> None:
        with self._cond:
            self._handles.extend(handles)
            self._cond.notify_all()
            if self._deleter is None:
                self._deleter = threading.Thread(target=self._delete_loop, daemon=True,
                                                 name=f"sqs-delete-{self.queue.name}")
                self._deleter.start()

    def _delete_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._handles) or self._closing)
                if self._closing:
                    return
                # a moment for others to come, so that one call deletes up to ten
                self._cond.wait_for(lambda: len(self._handles) >= 10 or self._closing,
                                    timeout=DELETE_LINGER_S)
                batch, self._handles = self._handles[:10], self._handles[10:]
            try:
                self._delete(batch)
            except Exception as exc:  # seen again after its visibility timeout
                self.delete_error = getattr(exc, "message", None) or str(exc)

    def _delete(self, handles: list[str]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
        with self._errors("delete received queue messages"):
            self.aws.sqs.delete_message_batch(QueueUrl=self.queue.url, Entries=entries)

    def drain(self) -> int:
        """Drop every message there now (test events, events of earlier runs); how many."""
        dropped = 0
        while True:
            with self._errors("drain the event queue"):
                answer = self.aws.sqs.receive_message(QueueUrl=self.queue.url,
                                                      MaxNumberOfMessages=10,
                                                      WaitTimeSeconds=0)
            received = answer.get("Messages", [])
            if not received:
                return dropped
            dropped += len(received)
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                       for i, m in enumerate(received)]
            with self._errors("delete drained queue messages"):
                self.aws.sqs.delete_message_batch(QueueUrl=self.queue.url, Entries=entries)

    def _errors(self, action: str) -> Any:
        return aws_errors(action, endpoint=self.aws.target.endpoint_url,
                          fallback=self.fallback, connection_error=self.connection_error)


def ensure_queue(aws: Aws, name: str, *, bucket: str) -> tuple[Queue, bool]:
    """The SQS queue ``name`` (made if missing) with a policy letting the bucket's
    notifications send to it; and whether it was created now."""
    endpoint = aws.target.endpoint_url
    with aws_errors(f"look up the queue {name}", endpoint=endpoint):
        try:
            url = aws.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            created = False
        except Exception as exc:
            if error_code(exc) not in {"AWS.SimpleQueueService.NonExistentQueue",
                                       "QueueDoesNotExist"}:
                raise
            url = aws.sqs.create_queue(QueueName=name, Attributes={
                "MessageRetentionPeriod": "3600"})["QueueUrl"]
            created = True
        attributes = aws.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn", "Policy"])["Attributes"]
        arn = attributes["QueueArn"]
        policy = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "mlperf-pilot-s3", "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": arn, "Condition": {"ArnLike": {"aws:SourceArn":
                                                       f"arn:aws:s3:::{bucket}"}}}]})
        if _policy_of(attributes.get("Policy")) != json.loads(policy):
            aws.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    return Queue(name, url, arn), created


def _policy_of(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def find_queue(aws: Aws, name: str) -> Queue | None:
    """The queue ``name`` when it exists, else None."""
    with aws_errors(f"look up the queue {name}", endpoint=aws.target.endpoint_url):
        try:
            url = aws.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except Exception as exc:
            if error_code(exc) in {"AWS.SimpleQueueService.NonExistentQueue",
                                   "QueueDoesNotExist"}:
                return None
            raise
        arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]
                                           )["Attributes"]["QueueArn"]
    return Queue(name, url, arn)


def delete_queue(aws: Aws, url: str) -> None:
    with aws_errors("delete a queue", endpoint=aws.target.endpoint_url):
        try:
            aws.sqs.delete_queue(QueueUrl=url)
        except Exception as exc:
            if error_code(exc) not in {"AWS.SimpleQueueService.NonExistentQueue",
                                       "QueueDoesNotExist"}:
                raise


__all__ = ["EventQueue", "Queue", "S3Event", "delete_queue", "ensure_queue", "find_queue",
           "parse_s3_events"]
