"""The bucket both ends use: objects uploaded once by checksum, S3 -> SQS notifications,
S3 event messages, and the clean-up of one run's objects.

    from mlperf_pilot.serverless.aws import Aws, AwsTarget
    from mlperf_pilot.serverless.bucket import Bucket, EventQueue, new_run_id

    aws = Aws(AwsTarget(endpoint_url=url))
    bucket = Bucket(aws, "my-bucket")
    bucket.require()                                  # ConfigError naming it and `deploy`
    keys = bucket.upload_model([model_path])          # models/<sha256>/<name>, once
    bucket.upload_samples("imagenet-demo-224", samples)   # datasets/<key>/<i>.npy, once
    run_id = new_run_id("local")                      # "local-20261202T040000-1a2b3c"
    queue = bucket.ensure_output_queue()              # output/ creations -> this queue
    bucket.put(messages.input_key(run_id, "q0"), request.to_json())
    for event in queue.receive(wait_s=1):             # S3Event(key="output/<run>/q0.json")
        output = messages.Output.from_json(bucket.get(event.key))
    bucket.clean_run(run_id)                          # input/ output/ completed/ of the run

Key layout: :mod:`mlperf_pilot.serverless.messages`. Which functions a request goes to is
told by the start of its run id, because S3 notifications cannot overlap: a run id
``m<MB>-...`` is picked up by the AWS function of that memory size (deploy points
``input/m<MB>-`` at it), ``local-...`` by the local pool (``input/local-`` -> the
bucket's local input queue). Completion is learned from the bucket's output queue
(``output/`` creations), never by polling the bucket. One run at a time per bucket:
events of other runs that reach the output queue are dropped.

Objects uploaded by :meth:`Bucket.upload_file` and friends carry their sha256 in the
metadata (``x-amz-meta-sha256``); an object already there with the same sha256 is kept,
not uploaded again. Every call goes through :func:`~mlperf_pilot.serverless.aws.aws_errors`:
boto3 errors come out as the tool's (ConfigError for a missing bucket or credentials,
``fallback`` -- SutError by default -- for the rest).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.errors import ConfigError, MlperfPilotError, SutError
from mlperf_pilot.serverless import messages
from mlperf_pilot.serverless.aws import Aws, aws_errors, error_code, missing_bucket_error
from mlperf_pilot.serverless.events import (
    EventQueue,
    Queue,
    S3Event,
    delete_queue,
    ensure_queue,
    find_queue,
    parse_s3_events,
)
from mlperf_pilot.storage import file_sha256

PUT_EVENT = "s3:ObjectCreated:Put"
NOTIFICATION_ID = "mlperf-pilot-"  # every notification this tool makes starts with it
LOCAL_RUN = "local-"  # run ids of local functions
STATE_KEY = ".mlperf-pilot/deploy.json"  # what `serverless deploy` made (deploy.py)
_SHA = "sha256"  # the metadata entry (x-amz-meta-sha256)
_UPLOAD_THREADS = 8


def run_id_prefix(functions: str, memory_mb: int | None = None) -> str:
    """The start of a run id that routes its requests: ``local-`` for the local pool,
    ``m<MB>-`` for the AWS function of that memory size."""
    if functions == "local":
        return LOCAL_RUN
    if functions == "aws" and memory_mb:
        return f"m{int(memory_mb)}-"
    raise ValueError(f"functions {functions!r} (memory {memory_mb!r}) has no run id prefix")


def new_run_id(functions: str, memory_mb: int | None = None) -> str:
    """A fresh run id: the routing prefix, a UTC stamp and 6 random hex digits."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{run_id_prefix(functions, memory_mb)}{stamp}-{secrets.token_hex(3)}"


def queue_name(bucket: str, purpose: str) -> str:
    """The bucket's SQS queue for ``purpose`` ("output", "local-input"): SQS names allow
    letters, digits, '-' and '_' (80 at most), bucket names also '.'."""
    return f"mlperf-pilot-{bucket.replace('.', '-')}-{purpose}"[:80]


def npy_bytes(array: np.ndarray) -> bytes:
    """A sample as the bytes of a ``.npy`` file (what ``datasets/`` holds)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


# ---------------------------------------------------------------- notifications


@dataclass(frozen=True)
class Notification:
    """One of the bucket's notifications: objects created under ``prefix`` -> ``arn``."""

    id: str  # starts with NOTIFICATION_ID
    prefix: str
    arn: str
    target: str  # "queue" or "function"
    events: tuple[str, ...] = (PUT_EVENT,)

    def as_config(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Id": self.id, "Events": list(self.events),
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": self.prefix}]}}}
        entry["QueueArn" if self.target == "queue" else "LambdaFunctionArn"] = self.arn
        return entry


_SECTIONS = {"queue": ("QueueConfigurations", "QueueArn"),
             "function": ("LambdaFunctionConfigurations", "LambdaFunctionArn")}


# ---------------------------------------------------------------- the bucket


@dataclass
class UploadCount:
    uploaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


class Bucket:
    """One S3 bucket (``prefix`` is put before every key of the layout; empty by default).
    ``fallback`` is the error class for failures that are neither configuration nor a
    missing bucket: SutError for the SUT, the deploy code passes its own.
    ``connection_error``: the class for an endpoint that cannot be reached (ConfigError,
    right for set-up; a SUT in the middle of a run may pass SutConnectionError). Queues
    made by ``ensure_*_queue`` inherit both."""

    def __init__(self, aws: Aws, name: str, prefix: str = "", *,
                 fallback: type[MlperfPilotError] = SutError,
                 connection_error: type[MlperfPilotError] = ConfigError) -> None:
        self.aws = aws
        self.name = name
        self.prefix = prefix
        self.fallback = fallback
        self.connection_error = connection_error

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.name}"

    # --- the bucket itself

    def exists(self) -> bool:
        with self._errors("look up the bucket"):
            try:
                self.aws.s3.head_bucket(Bucket=self.name)
                return True
            except Exception as exc:
                if error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                    return False
                raise

    def require(self) -> None:
        """ConfigError (exit 2) naming the bucket and ``mlperf-pilot serverless deploy``
        when it does not exist; ConfigError too for missing credentials or an endpoint
        that cannot be reached (what a run checks before LoadGen starts)."""
        self.aws.check_credentials()
        if not self.exists():
            raise missing_bucket_error(self.name, self.aws.target.endpoint_url)

    def create(self) -> bool:
        """Create the bucket when it is not there; whether it was created now."""
        if self.exists():
            return False
        arguments: dict[str, Any] = {"Bucket": self.name}
        if self.aws.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": self.aws.region}
        with self._errors("create the bucket"):
            self.aws.s3.create_bucket(**arguments)
        return True

    def delete_bucket(self) -> None:
        """Delete every object, then the bucket."""
        self.delete_prefix("")
        with self._errors("delete the bucket"):
            self.aws.s3.delete_bucket(Bucket=self.name)

    # --- objects

    def key(self, relative: str) -> str:
        return f"{self.prefix}{relative}"

    def put(self, key: str, data: bytes, *, content_type: str = "application/json",
            metadata: dict[str, str] | None = None) -> None:
        """Write an object (no checksum check: requests, state)."""
        with self._errors(f"write {key}"):
            self.aws.s3.put_object(Bucket=self.name, Key=key, Body=data,
                                   ContentType=content_type, Metadata=metadata or {})

    def get(self, key: str) -> bytes | None:
        """An object's bytes, or None when it is not there."""
        with self._errors(f"read {key}"):
            try:
                return self.aws.s3.get_object(Bucket=self.name, Key=key)["Body"].read()
            except Exception as exc:
                if error_code(exc) in {"NoSuchKey", "404"}:
                    return None
                raise

    def sha256_of(self, key: str) -> str | None:
        """The sha256 an object was uploaded with (its metadata), None if it is not there
        or has none."""
        with self._errors(f"look up {key}"):
            try:
                head = self.aws.s3.head_object(Bucket=self.name, Key=key)
            except Exception as exc:
                if error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                    return None
                raise
        return head.get("Metadata", {}).get(_SHA)

    def upload_bytes(self, key: str, data: bytes, *, sha256: str | None = None,
                     content_type: str = "application/octet-stream") -> bool:
        """Upload unless an object with the same sha256 is there; whether it uploaded."""
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        if self.sha256_of(key) == sha256:
            return False
        self.put(key, data, content_type=content_type, metadata={_SHA: sha256})
        return True

    def upload_file(self, key: str, path: Path, *, sha256: str | None = None) -> bool:
        """Upload a file (multipart for big ones) unless an object with the same sha256 is
        there; whether it uploaded."""
        sha256 = sha256 or file_sha256(path)
        if self.sha256_of(key) == sha256:
            return False
        with self._errors(f"upload {path.name} to {key}"):
            self.aws.s3.upload_file(str(path), self.name, key,
                                    ExtraArgs={"Metadata": {_SHA: sha256}})
        return True

    def upload_model(self, paths: Sequence[Path]) -> tuple[list[str], UploadCount]:
        """The model's file(s) at ``models/<sha256 of the main file>/<name>`` (once; the
        main file first, its companions -- an IR's .bin, a .caffemodel -- in the same
        folder, which the handler downloads whole); their keys, in order."""
        keys, count = [], UploadCount()
        shas = [file_sha256(path) for path in paths]
        main_sha = shas[0] if shas else ""
        for path, sha256 in zip(paths, shas, strict=True):
            key = messages.model_key(main_sha, path.name, self.prefix)
            keys.append(key)
            (count.uploaded if self.upload_file(key, path, sha256=sha256)
             else count.kept).append(key)
        return keys, count

    def upload_samples(self, dataset_key: str,
                       samples: Iterable[tuple[int, np.ndarray]]) -> UploadCount:
        """Preprocessed samples at ``datasets/<dataset_key>/<index>.npy`` (once): one
        listing finds what is there (an ETag equal to the bytes' MD5, or the same sha256 in
        the metadata, keeps it), the rest is uploaded by a few threads."""
        listed = {key: etag for key, etag in self._etags(
            f"{self.prefix}{messages.DATASETS}{dataset_key}/")}
        count = UploadCount()
        pending: list[tuple[str, bytes]] = []
        for index, array in samples:
            key = messages.sample_key(dataset_key, index, self.prefix)
            data = npy_bytes(array)
            if listed.get(key) == hashlib.md5(data, usedforsecurity=False).hexdigest():
                count.kept.append(key)
            else:
                pending.append((key, data))
        if pending:
            def upload(item: tuple[str, bytes]) -> tuple[str, bool]:
                key, data = item
                if key in listed:  # there, with another ETag: the sha256 decides
                    return key, self.upload_bytes(key, data)
                self.put(key, data, content_type="application/octet-stream",
                         metadata={_SHA: hashlib.sha256(data).hexdigest()})
                return key, True

            with ThreadPoolExecutor(min(_UPLOAD_THREADS, len(pending))) as pool:
                for key, uploaded in pool.map(upload, pending):
                    (count.uploaded if uploaded else count.kept).append(key)
        return count

    def move(self, source: str, target: str) -> None:
        """Copy an object to ``target`` and delete ``source``."""
        with self._errors(f"move {source} to {target}"):
            self.aws.s3.copy_object(Bucket=self.name, Key=target,
                                    CopySource={"Bucket": self.name, "Key": source})
            self.aws.s3.delete_object(Bucket=self.name, Key=source)

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (the bucket prefix is not added)."""
        for key, _etag in self._etags(prefix):
            yield key

    def delete(self, keys: Sequence[str]) -> int:
        """Delete these keys (1,000 a call); how many."""
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            with self._errors("delete objects"):
                self.aws.s3.delete_objects(Bucket=self.name,
                                           Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; how many."""
        return self.delete(list(self.keys(prefix)))

    def clean_run(self, run_id: str) -> int:
        """Delete what one run left: ``input/<run>/``, ``output/<run>/``,
        ``completed/<run>/``; how many objects."""
        if not run_id or "/" in run_id:
            raise ValueError(f"not a run id: {run_id!r}")
        return sum(self.delete_prefix(f"{self.prefix}{part}{run_id}/")
                   for part in (messages.INPUT, messages.OUTPUT, messages.COMPLETED))

    # --- notifications and queues

    def notifications(self) -> list[Notification]:
        """This tool's notifications on the bucket (ids starting with NOTIFICATION_ID)."""
        found = []
        for target, entries in self._notification_config_sections().items():
            _section, arn_key = _SECTIONS[target]
            for entry in entries:
                if not str(entry.get("Id", "")).startswith(NOTIFICATION_ID):
                    continue
                rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
                prefix = next((r["Value"] for r in rules if r["Name"].lower() == "prefix"), "")
                found.append(Notification(entry["Id"], prefix, entry[arn_key], target,
                                          tuple(entry.get("Events", []))))
        return found

    def set_notifications(self, add: Sequence[Notification] = (),
                          remove_ids: Iterable[str] = ()) -> bool:
        """Add (or replace, by id) ``add`` and remove ``remove_ids``, keeping every other
        notification the bucket has; whether the configuration changed."""
        config = self._get_notification_config()
        before = json.dumps(config, sort_keys=True)
        drop = set(remove_ids) | {n.id for n in add}
        for section, _arn_key in _SECTIONS.values():
            config[section] = [e for e in config.get(section, []) if e.get("Id") not in drop]
        for notification in add:
            config[_SECTIONS[notification.target][0]].append(notification.as_config())
        config = {k: v for k, v in config.items() if v}
        if _normalised(config) == _normalised(json.loads(before)):
            return False
        with self._errors("set the bucket's notifications"):
            self.aws.s3.put_bucket_notification_configuration(
                Bucket=self.name, NotificationConfiguration=config)
        return True

    def ensure_output_queue(self) -> EventQueue:
        """The bucket's output queue (made if missing) notified of ``output/`` creations:
        what the host waits on. Made by deploy, or by the first run."""
        return self._ensure_queue("output", f"{self.prefix}{messages.OUTPUT}")

    def ensure_local_input_queue(self) -> EventQueue:
        """The queue notified of ``input/local-`` creations: what the local function pool
        waits on (with AWS functions, ``input/m<MB>-`` goes to the function instead)."""
        return self._ensure_queue("local-input", f"{self.prefix}{messages.INPUT}{LOCAL_RUN}")

    def _ensure_queue(self, purpose: str, prefix: str) -> EventQueue:
        queue, _created = ensure_queue(self.aws, queue_name(self.name, purpose),
                                       bucket=self.name)
        self.set_notifications([Notification(f"{NOTIFICATION_ID}{purpose}", prefix,
                                              queue.arn, "queue")])
        return EventQueue(self.aws, queue, fallback=self.fallback,
                          connection_error=self.connection_error)

    # --- internals

    def _get_notification_config(self) -> dict[str, Any]:
        with self._errors("read the bucket's notifications"):
            config = self.aws.s3.get_bucket_notification_configuration(Bucket=self.name)
        config.pop("ResponseMetadata", None)
        for section, _arn_key in _SECTIONS.values():
            config.setdefault(section, [])
        return config

    def _notification_config_sections(self) -> dict[str, list[dict[str, Any]]]:
        config = self._get_notification_config()
        return {target: config.get(section, []) for target, (section, _a) in _SECTIONS.items()}

    def _etags(self, prefix: str) -> Iterator[tuple[str, str]]:
        with self._errors(f"list {prefix or 'the bucket'}"):
            pages = self.aws.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"], str(item.get("ETag", "")).strip('"')

    def _errors(self, action: str) -> Any:
        return aws_errors(f"{action} in s3://{self.name}", bucket=self.name,
                          endpoint=self.aws.target.endpoint_url, fallback=self.fallback,
                          connection_error=self.connection_error)


def _normalised(config: dict[str, Any]) -> str:
    """A notification configuration in a form that compares equal when it means the same
    (S3 adds empty sections and may reorder filter rules or capitalise their names)."""
    clean: dict[str, Any] = {}
    for section, arn_key in _SECTIONS.values():
        entries = []
        for entry in config.get(section, []) or []:
            rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            entries.append((entry.get("Id"), entry.get(arn_key), sorted(entry.get("Events", [])),
                            sorted((r["Name"].lower(), r["Value"]) for r in rules)))
        clean[section] = sorted(entries, key=str)
    for other in ("TopicConfigurations", "EventBridgeConfiguration"):
        if config.get(other):
            clean[other] = config[other]
    return json.dumps(clean, sort_keys=True, default=str)


__all__ = ["LOCAL_RUN", "NOTIFICATION_ID", "PUT_EVENT", "STATE_KEY", "Bucket", "EventQueue",
           "Notification", "Queue", "S3Event", "UploadCount", "delete_queue", "ensure_queue",
           "find_queue", "new_run_id", "npy_bytes", "parse_s3_events", "queue_name",
           "run_id_prefix"]
