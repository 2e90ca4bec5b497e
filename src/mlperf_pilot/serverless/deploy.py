"""``serverless deploy`` and ``serverless destroy``: the AWS pieces a serverless run needs,
made (or updated) with boto3 from a package folder (``serverless package --out DIR``).

:func:`deploy` creates or updates, each only where it differs from what is there:

- the bucket and its prefixes (empty ``models/``, ``datasets/``, ``input/``, ``output/``,
  ``completed/`` markers);
- the model file(s) at ``models/<sha256>/`` when the package has no model layer (by
  checksum: an object with the same sha256 is kept);
- one Lambda layer version per layer zip (``<function>-<zip stem>``), published only when
  no version of that layer carries the zip's sha256 in its description;
- one function per memory size, ``<function>-<MB>`` (code compared by CodeSha256, the
  configuration field by field), with the package's environment plus the bucket and model
  key (``MLPERF_FN_*``; nothing secret: the function's credentials are its role's);
- the permission for S3 to invoke each function from this bucket;
- the bucket's ``s3:ObjectCreated:Put`` notifications: ``input/m<MB>-`` -> the function of
  that memory size (runs for it use run ids starting ``m<MB>-``, see bucket.py), and
  ``output/`` -> the bucket's output queue (SQS), which the host waits on;
- the state object ``.mlperf-pilot/deploy.json`` in the bucket: what this tool created,
  so that :func:`destroy` removes exactly that (and a bucket only if deploy created it).

A second deploy with the same package changes nothing and says so (every item ``kept``).
Both return a :class:`DeployResult` (the CLI prints it). The role (``--role``) is the
user's: deploy neither creates nor changes IAM roles. Errors: ConfigError for credentials,
names and endpoints (exit 2), DeployError for the rest (exit 1).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlperf_pilot.errors import ConfigError, DeployError
from mlperf_pilot.serverless import messages
from mlperf_pilot.serverless.aws import Aws, AwsTarget, aws_errors, error_code
from mlperf_pilot.serverless.bucket import (
    NOTIFICATION_ID,
    PUT_EVENT,
    STATE_KEY,
    Bucket,
    Notification,
    delete_queue,
    ensure_queue,
    find_queue,
    queue_name,
    run_id_prefix,
)
from mlperf_pilot.storage import file_sha256

STATE_VERSION = 1
PREFIXES = (messages.MODELS, messages.DATASETS, messages.INPUT, messages.OUTPUT,
            messages.COMPLETED)
PERMISSION_ID = "mlperf-pilot-s3-invoke"
CODE_PREFIX = ".mlperf-pilot/code/"  # zips too big for the API call itself
DIRECT_UPLOAD_BYTES = 45 * 1024 * 1024  # under Lambda's 50 MB for a zip in the call
_NOT_FOUND = {"ResourceNotFoundException", "404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class DeployOptions:
    bucket: str
    function_name: str = ""  # base name: one function per memory size, "<name>-<MB>"
    role: str = ""  # the functions' execution role ARN
    memory_mb: tuple[int, ...] = (768, 1536, 2240, 3008)
    package_dir: Path | None = None  # `serverless package --out DIR`; None: storage only
    target: AwsTarget = field(default_factory=AwsTarget)
    timeout_s: int = 300  # the functions' timeout
    model_paths: tuple[Path, ...] = ()  # the model's files, when the package has no layer
    function_s3_endpoint: str | None = None  # MLPERF_FN_S3_ENDPOINT for the functions
    direct_upload_bytes: int = DIRECT_UPLOAD_BYTES  # larger zips go through the bucket


@dataclass(frozen=True)
class Change:
    """One item deploy or destroy looked at."""

    kind: str  # bucket, prefix, object, layer, function, permission, notification, queue, state
    name: str
    action: str  # created, updated, kept, deleted, gone (already not there)
    detail: str = ""


@dataclass
class DeployState:
    """What deploy created (``.mlperf-pilot/deploy.json`` in the bucket)."""

    bucket: str
    region: str
    endpoint_url: str | None = None
    bucket_created: bool = False
    function_name: str = ""
    functions: dict[str, str] = field(default_factory=dict)  # memory MB -> function ARN
    layers: list[str] = field(default_factory=list)  # layer version ARNs published
    queues: dict[str, str] = field(default_factory=dict)  # queue name -> URL (created)
    notifications: list[str] = field(default_factory=list)  # notification ids
    objects: list[str] = field(default_factory=list)  # keys uploaded (markers, model, code)
    model_key: str | None = None
    package_sha256: str | None = None  # function.zip's
    version: int = STATE_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> DeployState:
        try:
            raw = json.loads(data)
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        except (ValueError, TypeError) as exc:
            raise DeployError(f"{STATE_KEY} is not a deploy state: {exc}",
                              hint="delete it and deploy again") from None

    def run_ids(self) -> dict[int, str]:
        """Memory MB -> the run id prefix that routes to that function."""
        return {int(m): run_id_prefix("aws", int(m)) for m in self.functions}


@dataclass
class DeployResult:
    state: DeployState
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.action not in {"kept", "gone"} for c in self.changes)

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)


def function_name_for(base: str, memory_mb: int) -> str:
    return f"{base}-{int(memory_mb)}"


def load_state(bucket: Bucket) -> DeployState | None:
    """The bucket's deploy state, None when there is none (or no bucket)."""
    if not bucket.exists():
        return None
    data = bucket.get(STATE_KEY)
    return DeployState.from_json(data) if data is not None else None


# ---------------------------------------------------------------- deploy


def deploy(options: DeployOptions, *, aws: Aws | None = None) -> DeployResult:
    """Create or update every piece (see the module doc); what was created, updated, kept."""
    aws = aws or Aws(options.target)
    aws.check_credentials()
    package = _Package(options.package_dir) if options.package_dir else None
    if package is not None:
        _check_function_options(options)
    bucket = Bucket(aws, options.bucket, fallback=DeployError)
    previous = load_state(bucket)
    state = previous or DeployState(bucket=options.bucket, region=aws.region,
                                    endpoint_url=options.target.endpoint_url)
    state.region, state.endpoint_url = aws.region, options.target.endpoint_url
    result = DeployResult(state)
    changes = result.changes

    created = bucket.create()
    state.bucket_created = state.bucket_created or created
    changes.append(Change("bucket", options.bucket, "created" if created else "kept"))
    for prefix in PREFIXES:
        uploaded = bucket.upload_bytes(prefix, b"")
        _remember(state.objects, prefix, uploaded)
        changes.append(Change("prefix", prefix, "created" if uploaded else "kept"))

    if package is not None:
        state.model_key = _deploy_model(bucket, package, options, state, changes)
        layer_arns = _deploy_layers(aws, bucket, package, options, state, changes)
        account = aws.account_id()
        for memory in options.memory_mb:
            arn = _deploy_function(aws, bucket, package, options, memory, layer_arns,
                                   state, changes)
            _deploy_permission(aws, arn, bucket, account, changes)
        state.package_sha256 = package.function_sha256
        state.function_name = options.function_name

    name = queue_name(options.bucket, "output")
    queue, queue_created = ensure_queue(aws, name, bucket=options.bucket)
    if queue_created:
        state.queues[name] = queue.url
    changes.append(Change("queue", name, "created" if queue_created else "kept"))
    # every function deploy made keeps its trigger (an earlier deploy's memory sizes too)
    notifications = [Notification(f"{NOTIFICATION_ID}fn-{memory}",
                                  f"{bucket.prefix}{messages.INPUT}"
                                  f"{run_id_prefix('aws', int(memory))}", arn, "function")
                     for memory, arn in sorted(state.functions.items(),
                                               key=lambda item: int(item[0]))]
    notifications.append(Notification(f"{NOTIFICATION_ID}output",
                                      f"{bucket.prefix}{messages.OUTPUT}", queue.arn, "queue"))
    existing = {n.id: n for n in bucket.notifications()}
    bucket.set_notifications(notifications)
    state.notifications = sorted(set(state.notifications) | {n.id for n in notifications})
    for notification in notifications:
        before = existing.get(notification.id)
        action = ("created" if before is None else
                  "kept" if (before.prefix, before.arn, set(before.events)) ==
                  (notification.prefix, notification.arn, set(notification.events))
                  else "updated")
        changes.append(Change("notification", f"{notification.prefix} -> "
                              f"{notification.arn.rsplit(':', 1)[-1]}", action, PUT_EVENT))

    data = state.to_json()
    if previous is None or previous.to_json() != data:
        bucket.put(STATE_KEY, data)
        changes.append(Change("state", f"s3://{options.bucket}/{STATE_KEY}",
                              "created" if previous is None else "updated"))
    else:
        changes.append(Change("state", f"s3://{options.bucket}/{STATE_KEY}", "kept"))
    return result


class _Package:
    """A package folder: function.zip, layers/*.zip, manifest.json."""

    def __init__(self, folder: Path) -> None:
        from mlperf_pilot.serverless.package import read_manifest

        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.function_zip = self.folder / "function.zip"
        if not self.function_zip.is_file():
            raise ConfigError(f"{self.function_zip} is missing",
                              hint="build the package with `mlperf-pilot serverless package`")
        self.function_sha256 = file_sha256(self.function_zip)
        self.layer_zips = sorted((self.folder / "layers").glob("*.zip"))
        self.handler = str(self.manifest.get("handler") or "mlperf_pilot_fn.handler.handler")
        self.runtime = str(self.manifest.get("runtime") or "python3.11")
        self.environment = {str(k): str(v) for k, v in
                            (self.manifest.get("environment") or {}).items()}
        self.model = self.manifest.get("model") or {}

    def has_model_layer(self) -> bool:
        return bool(self.model.get("layer_dir")) and any(
            p.stem == "model" for p in self.layer_zips)


def _check_function_options(options: DeployOptions) -> None:
    if not options.function_name:
        raise ConfigError("--function-name is needed to deploy a package",
                          hint="e.g. --function-name mlperf-demo (one function per memory size)")
    if not options.role.startswith("arn:"):
        raise ConfigError(f"--role must be an IAM role ARN, not {options.role!r}",
                          hint="e.g. arn:aws:iam::123456789012:role/mlperf-lambda "
                               "(it needs s3:GetObject/PutObject/DeleteObject on the bucket)")
    if not options.memory_mb or any(not 128 <= m <= 10240 for m in options.memory_mb):
        raise ConfigError(f"memory sizes {list(options.memory_mb)} are not all within "
                          "Lambda's 128-10240 MB", hint="e.g. --memory-mb 768,1536,2240,3008")
    longest = function_name_for(options.function_name, max(options.memory_mb))
    if len(longest) > 64:
        raise ConfigError(f"the function name {longest!r} is longer than Lambda's 64",
                          hint="give a shorter --function-name")


def _deploy_model(bucket: Bucket, package: _Package, options: DeployOptions,
                  state: DeployState, changes: list[Change]) -> str | None:
    """The model files in the bucket when the package has no model layer; their key."""
    if package.has_model_layer() and not options.model_paths:
        changes.append(Change("model", package.model.get("file") or "model", "kept",
                              "in the model layer"))
        return None
    if not options.model_paths:
        name = package.model.get("file") or "the model file"
        raise ConfigError("the package has no model layer and no --model-path was given: "
                          "the functions would have no model",
                          hint=f"pass --model-path with {name} (it goes to the bucket once)")
    from mlperf_pilot.serverless.package import model_files

    first = model_files(options.model_paths[0])
    paths = first + [p for p in options.model_paths[1:] if p not in first]
    main_sha = file_sha256(paths[0])
    expected = package.model.get("sha256")
    if expected and expected != main_sha:
        raise ConfigError(f"{paths[0]} is not the model the package was built for "
                          f"(sha256 {main_sha[:12]}..., the manifest says {expected[:12]}...)",
                          hint="pass the package's model file, or package this one")
    for path in paths:
        key = messages.model_key(main_sha, path.name, bucket.prefix)
        uploaded = bucket.upload_file(key, path)
        _remember(state.objects, key, uploaded)
        changes.append(Change("object", key, "created" if uploaded else "kept"))
    return messages.model_key(main_sha, paths[0].name, bucket.prefix)


def _code(bucket: Bucket, path: Path, sha256: str, options: DeployOptions,
          state: DeployState, changes: list[Change]) -> dict[str, Any]:
    """A zip for the Lambda API: in the call when small, else an object in the bucket."""
    if path.stat().st_size <= options.direct_upload_bytes:
        return {"ZipFile": path.read_bytes()}
    key = f"{bucket.prefix}{CODE_PREFIX}{sha256}/{path.name}"
    uploaded = bucket.upload_file(key, path, sha256=sha256)
    _remember(state.objects, key, uploaded)
    changes.append(Change("object", key, "created" if uploaded else "kept"))
    return {"S3Bucket": bucket.name, "S3Key": key}


def _deploy_layers(aws: Aws, bucket: Bucket, package: _Package, options: DeployOptions,
                   state: DeployState, changes: list[Change]) -> list[str]:
    arns = []
    for path in package.layer_zips:
        name = f"{options.function_name}-{path.stem}"
        sha256 = file_sha256(path)
        marker = f"mlperf-pilot sha256={sha256}"
        with _errors(aws, f"list the versions of layer {name}"):
            pages = aws.lambda_.get_paginator("list_layer_versions").paginate(LayerName=name)
            found = [v["LayerVersionArn"] for page in pages
                     for v in page.get("LayerVersions", []) if v.get("Description") == marker]
        if found:
            arns.append(found[0])
            changes.append(Change("layer", name, "kept",
                                  f"version {found[0].rsplit(':', 1)[-1]}"))
            continue
        content = _code(bucket, path, sha256, options, state, changes)
        with _errors(aws, f"publish layer {name}"):
            published = aws.lambda_.publish_layer_version(
                LayerName=name, Description=marker, Content=content,
                CompatibleRuntimes=[package.runtime])
        arns.append(published["LayerVersionArn"])
        state.layers.append(published["LayerVersionArn"])
        changes.append(Change("layer", name, "created", f"version {published['Version']}"))
    return arns


def _deploy_function(aws: Aws, bucket: Bucket, package: _Package, options: DeployOptions,
                     memory: int, layer_arns: Sequence[str], state: DeployState,
                     changes: list[Change]) -> str:
    name = function_name_for(options.function_name, memory)
    environment = dict(package.environment)
    environment["MLPERF_FN_BUCKET"] = bucket.name
    if state.model_key:
        environment["MLPERF_FN_MODEL_KEY"] = state.model_key
    if options.function_s3_endpoint:
        environment["MLPERF_FN_S3_ENDPOINT"] = options.function_s3_endpoint
    wanted = {"Runtime": package.runtime, "Handler": package.handler, "Role": options.role,
              "MemorySize": int(memory), "Timeout": int(options.timeout_s),
              "Layers": list(layer_arns), "Environment": {"Variables": environment}}
    code_sha = base64.b64encode(bytes.fromhex(package.function_sha256)).decode()
    current = _get_function(aws, name)
    if current is None:
        code = _code(bucket, package.function_zip, package.function_sha256, options, state,
                     changes)
        with _errors(aws, f"create function {name}"):
            made = aws.lambda_.create_function(FunctionName=name, Code=code,
                                               Publish=False, **wanted)
            _wait(aws, "function_active_v2", name)
        state.functions[str(memory)] = made["FunctionArn"]
        changes.append(Change("function", name, "created", f"{memory} MB"))
        return str(made["FunctionArn"])
    arn = str(current["FunctionArn"])
    done = []
    if current.get("CodeSha256") != code_sha:
        code = _code(bucket, package.function_zip, package.function_sha256, options, state,
                     changes)
        with _errors(aws, f"update the code of function {name}"):
            aws.lambda_.update_function_code(FunctionName=name, **code)
            _wait(aws, "function_updated_v2", name)
        done.append("code")
    differs = [key for key, value in wanted.items() if _current_value(current, key) != value]
    if differs:
        with _errors(aws, f"update the configuration of function {name}"):
            aws.lambda_.update_function_configuration(FunctionName=name, **wanted)
            _wait(aws, "function_updated_v2", name)
        done.append(", ".join(k.lower() for k in differs))
    changes.append(Change("function", name, "updated" if done else "kept",
                          "; ".join(done) if done else f"{memory} MB"))
    return arn


def _current_value(config: dict[str, Any], key: str) -> Any:
    if key == "Layers":
        return [layer["Arn"] for layer in config.get("Layers", [])]
    if key == "Environment":
        return {"Variables": dict(config.get("Environment", {}).get("Variables", {}))}
    return config.get(key)


def _deploy_permission(aws: Aws, function_arn: str, bucket: Bucket, account: str,
                       changes: list[Change]) -> None:
    name = function_arn.rsplit(":", 1)[-1]
    with _errors(aws, f"read the policy of function {name}"):
        try:
            policy = json.loads(aws.lambda_.get_policy(FunctionName=name)["Policy"])
        except Exception as exc:
            if error_code(exc) not in _NOT_FOUND:
                raise
            policy = {"Statement": []}
    if any(s.get("Sid") == PERMISSION_ID for s in policy.get("Statement", [])):
        changes.append(Change("permission", f"{name}: s3 invoke", "kept"))
        return
    with _errors(aws, f"let S3 invoke function {name}"):
        aws.lambda_.add_permission(FunctionName=name, StatementId=PERMISSION_ID,
                                   Action="lambda:InvokeFunction",
                                   Principal="s3.amazonaws.com", SourceArn=bucket.arn,
                                   SourceAccount=account)
    changes.append(Change("permission", f"{name}: s3 invoke", "created", bucket.arn))


def _get_function(aws: Aws, name: str) -> dict[str, Any] | None:
    with _errors(aws, f"look up function {name}"):
        try:
            return dict(aws.lambda_.get_function(FunctionName=name)["Configuration"])
        except Exception as exc:
            if error_code(exc) in _NOT_FOUND:
                return None
            raise


def _wait(aws: Aws, waiter: str, name: str) -> None:
    aws.lambda_.get_waiter(waiter).wait(FunctionName=name,
                                        WaiterConfig={"Delay": 2, "MaxAttempts": 150})


def _remember(keys: list[str], key: str, created: bool) -> None:
    if created and key not in keys:
        keys.append(key)


def _errors(aws: Aws, action: str) -> Any:
    return aws_errors(action, endpoint=aws.target.endpoint_url, fallback=DeployError)


# ---------------------------------------------------------------- destroy


def destroy(bucket_name: str, target: AwsTarget | None = None, *,
            aws: Aws | None = None) -> DeployResult:
    """Remove what deploy recorded in the bucket's state: the notifications, functions (and
    their permissions), layer versions, queues, uploaded objects, the state object, and the
    bucket when deploy created it (with everything in it). ConfigError when the bucket or
    its state is not there (nothing to destroy)."""
    aws = aws or Aws(target or AwsTarget())
    aws.check_credentials()
    bucket = Bucket(aws, bucket_name, fallback=DeployError)
    bucket.require()
    state = load_state(bucket)
    if state is None:
        raise ConfigError(f"s3://{bucket_name} has no {STATE_KEY}: nothing deployed there "
                          "by this tool", hint="check --bucket (and --endpoint-url)")
    result = DeployResult(state)
    changes = result.changes
    # this tool's notifications (deploy's, and the local pool's that runs add)
    ids = sorted(set(state.notifications) | {n.id for n in bucket.notifications()})
    removed = bucket.set_notifications(remove_ids=ids)
    changes.append(Change("notification", ", ".join(ids) or "(none)",
                          "deleted" if removed else "gone"))
    for memory, arn in sorted(state.functions.items(), key=lambda item: int(item[0])):
        name = arn.rsplit(":", 1)[-1]
        with _errors(aws, f"delete function {name}"):
            try:
                aws.lambda_.delete_function(FunctionName=name)
                changes.append(Change("function", name, "deleted", f"{memory} MB"))
            except Exception as exc:
                if error_code(exc) not in _NOT_FOUND:
                    raise
                changes.append(Change("function", name, "gone"))
    for arn in state.layers:
        layer, version = arn.rsplit(":", 2)[-2:]
        with _errors(aws, f"delete layer {layer} version {version}"):
            try:  # (AWS answers success for a version that is not there)
                aws.lambda_.delete_layer_version(LayerName=layer, VersionNumber=int(version))
            except Exception as exc:
                if error_code(exc) not in _NOT_FOUND:
                    raise
        changes.append(Change("layer", layer, "deleted", f"version {version}"))
    queues = dict(state.queues)
    if state.bucket_created:  # the bucket goes: so do the queues runs made for it
        for purpose in ("output", "local-input"):
            found = find_queue(aws, queue_name(bucket_name, purpose))
            if found is not None:
                queues.setdefault(found.name, found.url)
    for name, url in queues.items():
        delete_queue(aws, url)
        changes.append(Change("queue", name, "deleted"))
    if state.bucket_created:
        count = len(list(bucket.keys("")))
        bucket.delete_bucket()
        changes.append(Change("bucket", bucket_name, "deleted", f"with {count} objects"))
    else:
        bucket.delete([*state.objects, STATE_KEY])
        for key in state.objects:
            changes.append(Change("object", key, "deleted"))
        changes.append(Change("state", f"s3://{bucket_name}/{STATE_KEY}", "deleted"))
    return result


__all__ = ["PREFIXES", "STATE_VERSION", "Change", "DeployOptions", "DeployResult",
           "DeployState", "deploy", "destroy", "function_name_for", "load_state"]
