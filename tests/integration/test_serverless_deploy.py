"""`serverless deploy` / `destroy` against moto's S3, SQS, Lambda and IAM management API on
127.0.0.1 (moto creates functions without Docker; it cannot invoke them), with packages
built by the real packager (`serverless package`, no runtime layer) around a tiny ONNX
model: create, a second deploy that changes nothing, an update, the notifications,
destroy leaving nothing, and the one-line failures."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from builders import make_logits_classifier
from mlperf_pilot.cli.main import main
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.serverless.aws import Aws, AwsTarget
from mlperf_pilot.serverless.bucket import STATE_KEY, Bucket, queue_name
from mlperf_pilot.serverless.deploy import DeployOptions, deploy, destroy, load_state
from servers.moto_server import free_port

MEMORY = (768, 1536)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_logits_classifier(tmp_path_factory.mktemp("model") / "logits.onnx",
                                  output_name="ArgMax:0")


def _package(out: Path, model: Path, cache: Path, *, model_layer: bool = True) -> Path:
    from mlperf_pilot.assets.cache import AssetCache
    from mlperf_pilot.serverless.package import PackageOptions, build_package

    build_package(PackageOptions(model="resnet50", backend="onnxruntime", out_dir=out,
                                 model_path=model, runtime_layer=False,
                                 model_layer=model_layer), cache=AssetCache(cache))
    return out


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory, model: Path) -> Path:
    return _package(tmp_path_factory.mktemp("package"), model,
                    tmp_path_factory.mktemp("package-cache"))


@pytest.fixture
def role(moto_url: str) -> str:
    iam = Aws(AwsTarget(endpoint_url=moto_url)).iam
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    return str(iam.create_role(RoleName="mlperf-lambda",
                               AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def _options(moto_url: str, role: str, package: Path | None, **changes: object
             ) -> DeployOptions:
    values: dict[str, object] = {
        "bucket": "pilot-deploy", "function_name": "mlperf-demo", "role": role,
        "memory_mb": MEMORY, "package_dir": package,
        "target": AwsTarget(endpoint_url=moto_url)}
    values.update(changes)
    return DeployOptions(**values)  # type: ignore[arg-type]


def _actions(result: object) -> dict[tuple[str, str], str]:
    return {(c.kind, c.name): c.action for c in result.changes}  # type: ignore[attr-defined]


def test_deploy_creates_everything_and_a_second_deploy_changes_nothing(
        moto_url: str, role: str, package: Path) -> None:
    first = deploy(_options(moto_url, role, package))
    actions = _actions(first)
    assert actions[("bucket", "pilot-deploy")] == "created"
    assert actions[("function", "mlperf-demo-768")] == "created"
    assert actions[("function", "mlperf-demo-1536")] == "created"
    assert actions[("layer", "mlperf-demo-model")] == "created"
    assert actions[("queue", queue_name("pilot-deploy", "output"))] == "created"
    assert first.changed

    aws = Aws(AwsTarget(endpoint_url=moto_url))
    for memory in MEMORY:
        config = aws.lambda_.get_function(FunctionName=f"mlperf-demo-{memory}")["Configuration"]
        assert config["MemorySize"] == memory
        assert config["Handler"] == "mlperf_pilot_fn.handler.handler"
        assert [layer["Arn"] for layer in config["Layers"]] == first.state.layers
        variables = config["Environment"]["Variables"]
        assert variables["MLPERF_FN_BUCKET"] == "pilot-deploy"
        assert variables["MLPERF_FN_BACKEND"] == "onnxruntime"
        assert not [v for v in variables if "SECRET" in v or "KEY_ID" in v]
        policy = json.loads(aws.lambda_.get_policy(FunctionName=f"mlperf-demo-{memory}")
                            ["Policy"])
        [statement] = policy["Statement"]
        assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
        assert "arn:aws:s3:::pilot-deploy" in json.dumps(statement["Condition"])

    notifications = aws.s3.get_bucket_notification_configuration(Bucket="pilot-deploy")
    triggers = {c["Filter"]["Key"]["FilterRules"][0]["Value"]: c["LambdaFunctionArn"]
                for c in notifications["LambdaFunctionConfigurations"]}
    assert triggers == {f"input/m{m}-": first.state.functions[str(m)] for m in MEMORY}
    assert all(c["Events"] == ["s3:ObjectCreated:Put"]
               for c in notifications["LambdaFunctionConfigurations"])
    [queue] = notifications["QueueConfigurations"]
    assert queue["Filter"]["Key"]["FilterRules"][0]["Value"] == "output/"
    keys = set(Bucket(aws, "pilot-deploy").keys(""))
    assert {"models/", "datasets/", "input/", "output/", "completed/", STATE_KEY} <= keys
    assert load_state(Bucket(aws, "pilot-deploy")) == first.state

    second = deploy(_options(moto_url, role, package))
    assert not second.changed, [c for c in second.changes if c.action != "kept"]
    assert {c.action for c in second.changes} == {"kept"}
    layers = aws.lambda_.list_layer_versions(LayerName="mlperf-demo-model")["LayerVersions"]
    assert len(layers) == 1


def test_a_changed_package_updates_code_layers_and_configuration(
        moto_url: str, role: str, package: Path, model: Path, tmp_path: Path) -> None:
    first = deploy(_options(moto_url, role, package))
    changed = tmp_path / "changed"
    shutil.copytree(package, changed)
    with zipfile.ZipFile(changed / "function.zip", "a") as archive:
        archive.writestr("mlperf_pilot_fn/extra.py", "VALUE = 1\n")
    other_model = make_logits_classifier(tmp_path / "other.onnx", output_name="ArgMax:0",
                                         classes=10)
    with zipfile.ZipFile(changed / "layers" / "model.zip", "w") as archive:
        archive.write(other_model, "python/mlperf_pilot_model/logits.onnx")

    second = deploy(_options(moto_url, role, changed, timeout_s=120))
    actions = _actions(second)
    assert actions[("layer", "mlperf-demo-model")] == "created"  # a new version
    for memory in MEMORY:
        assert actions[("function", f"mlperf-demo-{memory}")] == "updated"
    details = {c.name: c.detail for c in second.changes if c.kind == "function"}
    assert details["mlperf-demo-768"].startswith("code; ")
    assert "timeout" in details["mlperf-demo-768"] and "layers" in details["mlperf-demo-768"]
    aws = Aws(AwsTarget(endpoint_url=moto_url))
    config = aws.lambda_.get_function(FunctionName="mlperf-demo-768")["Configuration"]
    assert config["Timeout"] == 120
    assert [layer["Arn"] for layer in config["Layers"]] == [second.state.layers[-1]]
    assert len(second.state.layers) == 2 and second.state.layers[0] == first.state.layers[0]
    assert not deploy(_options(moto_url, role, changed, timeout_s=120)).changed


def test_without_a_model_layer_the_model_goes_to_the_bucket_once(
        moto_url: str, role: str, model: Path, tmp_path: Path) -> None:
    package = _package(tmp_path / "package", model, tmp_path / "cache", model_layer=False)
    with pytest.raises(ConfigError, match="--model-path"):
        deploy(_options(moto_url, role, package))
    result = deploy(_options(moto_url, role, package, model_paths=(model,),
                             memory_mb=(768,)))
    manifest = json.loads((package / "manifest.json").read_text())
    assert result.state.model_key == manifest["model"]["key"]
    aws = Aws(AwsTarget(endpoint_url=moto_url))
    bucket = Bucket(aws, "pilot-deploy")
    assert bucket.get(manifest["model"]["key"]) == model.read_bytes()
    variables = aws.lambda_.get_function(FunctionName="mlperf-demo-768")[
        "Configuration"]["Environment"]["Variables"]
    assert variables["MLPERF_FN_MODEL_KEY"] == manifest["model"]["key"]
    again = deploy(_options(moto_url, role, package, model_paths=(model,), memory_mb=(768,)))
    assert _actions(again)[("object", manifest["model"]["key"])] == "kept"
    assert not again.changed
    wrong = make_logits_classifier(tmp_path / "wrong.onnx", classes=7)
    with pytest.raises(ConfigError, match="not the model the package was built for"):
        deploy(_options(moto_url, role, package, model_paths=(wrong,)))


def test_destroy_removes_everything_deploy_made(moto_url: str, role: str,
                                                package: Path) -> None:
    deploy(_options(moto_url, role, package))
    aws = Aws(AwsTarget(endpoint_url=moto_url))
    bucket = Bucket(aws, "pilot-deploy")
    bucket.ensure_local_input_queue()  # what a --functions local run adds
    bucket.put("input/local-run/q0.json", b"{}")  # a run's leftover
    result = destroy("pilot-deploy", AwsTarget(endpoint_url=moto_url))
    assert _actions(result)[("bucket", "pilot-deploy")] == "deleted"
    assert not bucket.exists()
    assert aws.lambda_.list_functions()["Functions"] == []
    assert aws.lambda_.list_layer_versions(LayerName="mlperf-demo-model")["LayerVersions"] == []
    assert aws.sqs.list_queues().get("QueueUrls", []) == []
    with pytest.raises(ConfigError, match="does not exist"):
        destroy("pilot-deploy", AwsTarget(endpoint_url=moto_url))


def test_destroy_keeps_a_bucket_it_did_not_create(moto_url: str, role: str,
                                                  package: Path) -> None:
    aws = Aws(AwsTarget(endpoint_url=moto_url))
    bucket = Bucket(aws, "pilot-deploy")
    bucket.create()
    bucket.put("theirs/report.txt", b"keep me")
    result = deploy(_options(moto_url, role, package))
    assert _actions(result)[("bucket", "pilot-deploy")] == "kept"
    destroy("pilot-deploy", AwsTarget(endpoint_url=moto_url))
    assert sorted(bucket.keys("")) == ["theirs/report.txt"]
    assert bucket.notifications() == []
    assert aws.lambda_.list_functions()["Functions"] == []
    assert aws.sqs.list_queues().get("QueueUrls", []) == []
    with pytest.raises(ConfigError, match="nothing deployed there"):
        destroy("pilot-deploy", AwsTarget(endpoint_url=moto_url))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_deploys_says_what_it_did_and_destroys(
        moto_url: str, role: str, package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["serverless", "deploy", "--bucket", "pilot-cli", "--function-name", "fn",
            "--role", role, "--memory-mb", "768", "--package", str(package),
            "--endpoint-url", moto_url]
    code, out, err = _cli(capsys, *base)
    assert code == 0, err
    assert re.search(r"^created\s+function\s+fn-768\s+\(768 MB\)$", out, re.MULTILINE), out
    assert out.strip().splitlines()[-1].startswith("deploy: ") and "created" in out
    code, out, err = _cli(capsys, *base)
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("deploy: nothing to change")
    code, out, err = _cli(capsys, *base, "--json")
    assert code == 0 and json.loads(out)["changed"] is False
    code, out, err = _cli(capsys, "serverless", "destroy", "--bucket", "pilot-cli",
                          "--endpoint-url", moto_url)
    assert code == 0, err
    assert re.search(r"^deleted\s+function\s+fn-768", out, re.MULTILINE), out
    assert re.search(r"^deleted\s+bucket\s+pilot-cli", out, re.MULTILINE), out
    assert "testing" not in out + err  # the dummy credentials never show


def test_cli_failures_are_one_line_with_exit_2(
        moto_url: str, role: str, package: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["serverless", "deploy", "--bucket", "pilot-cli", "--function-name", "fn",
            "--memory-mb", "768", "--package", str(package)]
    code, _out, err = _cli(capsys, *base, "--role", "not-an-arn", "--endpoint-url", moto_url)
    assert code == 2 and "--role must be an IAM role ARN" in err
    closed = f"http://127.0.0.1:{free_port()}"
    code, _out, err = _cli(capsys, *base, "--role", role, "--endpoint-url", closed)
    assert code == 2 and f"{closed} cannot be reached" in err
    code, _out, err = _cli(capsys, "serverless", "destroy", "--bucket", "no-such-bucket",
                           "--endpoint-url", moto_url)
    assert code == 2 and "'no-such-bucket' does not exist" in err
    assert "serverless deploy --bucket no-such-bucket" in err
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    code, _out, err = _cli(capsys, *base, "--role", role, "--endpoint-url", moto_url)
    assert code == 2 and "no AWS credentials found" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 2  # cause + hint
    code, _out, err = _cli(capsys, *base, "--role", role, "--endpoint-url", moto_url,
                           "--profile", "nobody")
    assert code == 2 and "nobody" in err


def test_storage_only_then_zips_through_the_bucket(moto_url: str, role: str,
                                                  package: Path) -> None:
    storage = deploy(_options(moto_url, "", None, function_name=""))
    actions = _actions(storage)
    assert actions[("queue", queue_name("pilot-deploy", "output"))] == "created"
    assert not [c for c in storage.changes if c.kind in {"function", "layer"}]
    aws = Aws(AwsTarget(endpoint_url=moto_url))
    bucket = Bucket(aws, "pilot-deploy")
    assert [n.prefix for n in bucket.notifications()] == ["output/"]

    # zips over the direct-upload limit go to the bucket and Lambda reads them there
    big = deploy(_options(moto_url, role, package, memory_mb=(768,), direct_upload_bytes=1))
    code = [c.name for c in big.changes if c.kind == "object" and c.action == "created"]
    assert any(k.startswith(".mlperf-pilot/code/") and k.endswith("/function.zip")
               for k in code)
    assert any(k.endswith("/model.zip") for k in code)
    config = aws.lambda_.get_function(FunctionName="mlperf-demo-768")["Configuration"]
    assert config["CodeSha256"]
    assert not deploy(_options(moto_url, role, package, memory_mb=(768,),
                               direct_upload_bytes=1)).changed
    destroy("pilot-deploy", AwsTarget(endpoint_url=moto_url))
    assert not bucket.exists()
