"""Shared fixtures: an isolated cache, tiny datasets and tiny real ONNX models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from builders import (
    make_failing_classifier,
    make_imagenet_folder,
    make_logits_classifier,
    make_resnet50_shaped,
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                    ) -> Path:
    """Every test gets its own cache unless it asks for another."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("MLPERF_PILOT_CACHE", str(cache))
    # the results store: <results-dir>/results.sqlite, never a user's
    monkeypatch.delenv("MLPERF_PILOT_STORE", raising=False)
    return cache


@pytest.fixture
def cache_dir() -> Path:
    import os

    return Path(os.environ["MLPERF_PILOT_CACHE"])


@pytest.fixture(scope="session")
def colour_imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 colour photos in ImageNet layout, all labelled right."""
    root = tmp_path_factory.mktemp("colour-imagenet")
    make_imagenet_folder(root, 24)
    return root


@pytest.fixture(scope="session")
def logits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_logits_classifier(tmp_path_factory.mktemp("models") / "logits.onnx")


@pytest.fixture(scope="session")
def resnet50_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_resnet50_shaped(tmp_path_factory.mktemp("models") / "resnet50_v1.onnx")


@pytest.fixture(scope="session")
def failing_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_failing_classifier(tmp_path_factory.mktemp("models") / "failing.onnx")


def _side_venv_python(module_name: str, what: str) -> Path:
    """The python of a server's own venv (tests/servers/<module_name>.py), created once
    and cached; the test is skipped, with the cause, where it cannot be created here."""
    import importlib

    module = importlib.import_module(f"servers.{module_name}")
    try:
        return module.venv_python()
    except module.VenvUnavailable as exc:
        pytest.skip(f"{what}'s venv cannot be created here: {exc}")


@pytest.fixture(scope="session")
def mlserver_python() -> Path:
    """The python of MLServer's own venv (tests/servers/mlserver_env.py), created once and
    cached; the test is skipped, with the cause, where it cannot be created here."""
    return _side_venv_python("mlserver_env", "MLServer")


@pytest.fixture
def mlserver(mlserver_python: Path, tmp_path: Path):  # -> Iterator[Callable[..., ...]]
    """A factory: ``mlserver(model_path, name=..., intra_op_threads=1, ...)`` starts a real
    MLServer on 127.0.0.1 (tests/servers/mlserver.py) and returns it ready; each one is
    stopped by its PID when the test ends."""
    from contextlib import ExitStack
    from itertools import count

    from servers.mlserver import start_mlserver

    numbers = count()
    with ExitStack() as stack:
        def start(model_path: Path, **options: object):
            work = tmp_path / f"mlserver-{next(numbers)}"
            return stack.enter_context(
                start_mlserver(model_path, work, python=mlserver_python, **options))

        yield start


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    """The python of MLflow's own venv (tests/servers/mlflow_env.py), created once and
    cached; the test is skipped, with the cause, where it cannot be created here."""
    return _side_venv_python("mlflow_env", "MLflow")


@pytest.fixture(scope="module")
def mlflow_server(mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real MLflow tracking server on 127.0.0.1 (tests/servers/mlflow_server.py: SQLite
    backend store, artifacts in a temp folder) for the module, stopped by its PID."""
    from servers.mlflow_server import start_mlflow_server

    with start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"),
                             python=mlflow_python) as server:
        yield server


@pytest.fixture
def aws_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
            ) -> dict[str, str]:
    """Dummy AWS credentials and region through the environment, and no profile or config
    file of the machine's: nothing a test does can reach real AWS with real keys."""
    empty = tmp_path_factory.mktemp("aws-config")
    values = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
              "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
              "AWS_CONFIG_FILE": str(empty / "config"),
              "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials")}
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL",
                 "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory):  # -> Iterator[MotoServer]
    """One real moto server (tests/servers/moto_server.py) on 127.0.0.1 for the session,
    stopped by its PID at the end. Prefer ``moto_url``, which empties it first."""
    from servers.moto_server import moto_server

    with moto_server(log_dir=tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def moto_url(moto, aws_env: dict[str, str]) -> str:
    """The session's moto server, emptied (every bucket, queue, function, role gone), with
    dummy credentials in the environment: its URL, for boto3's ``endpoint_url``."""
    if not moto.running():
        pytest.fail(f"the moto server (PID {moto.pid}) has exited:\n{moto.log_text()[-2000:]}")
    moto.reset()
    return moto.url


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``mlperf-pilot ARGS`` in-process, in tmp_path (files a run writes by default, such
    as the targets file, land there; LoadGen tests still run in child processes)."""
    from cli_runner import cli_runner

    monkeypatch.chdir(tmp_path)
    return cli_runner(capsys)
