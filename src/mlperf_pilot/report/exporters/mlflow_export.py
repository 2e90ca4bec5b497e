"""`results export --to mlflow`: each stored test as one run of an MLflow experiment.

Through ``mlflow.MlflowClient`` (the ``mlflow`` extra: ``mlflow-skinny``, the client
without the server, imported only here) against ``--tracking-uri`` (a tracking server,
``http://host:port``; its credentials, if any, come from MLflow's own environment
variables ``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME``/``..._PASSWORD``,
never from the URI or argv). One MLflow run per test (base.TrackedRun):

- run name = the test id, start/end = the test's, status FINISHED (FAILED for a FAILED
  test);
- params = the resolved settings (a value longer than MLflow's limit is cut, and the tag
  ``mlperf_pilot.truncated_params`` names those keys);
- metrics = the headline metric, latency percentiles, accuracy, samples_failed...;
- tags = status, reasons, system, model, scenario, mode, SUT kind, versions, test id,
  run id...; ``mlperf_pilot.test_id`` is the key a second export looks up;
- artifacts = the files of the test's LoadGen log folder, under ``loadgen/``.

Exporting is idempotent per experiment: a test whose run is already there (tag
``mlperf_pilot.test_id``, finished) is skipped; a run left RUNNING by an export that was
interrupted is deleted and logged again (so two exports of one test to one experiment
should not run at the same time).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from mlperf_pilot.errors import ConfigError, ExportError
from mlperf_pilot.extras import import_extra
from mlperf_pilot.report.exporters.base import (
    ExportedTest,
    Exporter,
    ExportSummary,
    TrackedRun,
    tracked_run,
)
from mlperf_pilot.report.tables import StoredTestLike

DEFAULT_EXPERIMENT = "mlperf-pilot"
TEST_ID_TAG = "mlperf_pilot.test_id"
TRUNCATED_TAG = "mlperf_pilot.truncated_params"
ARTIFACT_PATH = "loadgen"
HEALTH_TIMEOUT_S = 10.0
# MLflow's limits (mlflow.utils.validation), used when that module cannot say
PARAM_VALUE_MAX = 6000
TAG_VALUE_MAX = 8000
KEY_MAX = 250
CUT = "…[cut]"


def _mlflow() -> Any:
    return import_extra("mlflow", "mlflow.entities", "mlflow.exceptions",
                        package="mlflow-skinny", extra="mlflow",
                        purpose="results export --to mlflow")


def _limits() -> tuple[int, int, int]:
    try:
        from mlflow.utils import validation
    except ImportError:
        return PARAM_VALUE_MAX, TAG_VALUE_MAX, KEY_MAX
    return (getattr(validation, "MAX_PARAM_VAL_LENGTH", PARAM_VALUE_MAX),
            getattr(validation, "MAX_TAG_VAL_LENGTH", TAG_VALUE_MAX),
            getattr(validation, "MAX_ENTITY_KEY_LENGTH", KEY_MAX))


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit - len(CUT)] + CUT


def check_tracking_uri(uri: str) -> str:
    """The URI as given; ConfigError when it is empty or holds credentials."""
    uri = uri.strip()
    if not uri:
        raise ConfigError("--tracking-uri is empty",
                          hint="give the tracking server's URL, e.g. http://127.0.0.1:5000")
    parts = urlsplit(uri)
    if parts.username or parts.password:
        raise ConfigError("--tracking-uri must not hold credentials",
                          hint="set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or "
                               "MLFLOW_TRACKING_TOKEN in the environment instead")
    return uri


class MlflowExporter(Exporter):
    """Logs stored tests to an MLflow tracking server (see the module's docstring)."""

    name: ClassVar[str] = "mlflow"
    extra: ClassVar[str] = "mlflow"

    def __init__(self, *, tracking_uri: str, experiment: str | None = None) -> None:
        self.tracking_uri = check_tracking_uri(tracking_uri)
        self.experiment = experiment or DEFAULT_EXPERIMENT

    @property
    def destination(self) -> str:
        return f"{self.tracking_uri} (experiment {self.experiment!r})"

    def export(self, tests: Sequence[StoredTestLike]) -> ExportSummary:
        mlflow = _mlflow()
        self._check_server()
        client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        done: list[ExportedTest] = []
        with self._errors(mlflow):
            experiment_id = self._experiment_id(client)
            for test in tests:
                run = tracked_run(test)
                existing = self._existing(client, experiment_id, run.test_id)
                if existing is not None:
                    done.append(ExportedTest(run.test_id, existing, skipped=True))
                    continue
                done.append(ExportedTest(run.test_id, self._log(mlflow, client,
                                                                experiment_id, run)))
        return ExportSummary(self.name, self.destination, tuple(done),
                             details={"tracking_uri": self.tracking_uri,
                                      "experiment": self.experiment,
                                      "experiment_id": experiment_id})

    # ----------------------------------------------------------------------- steps

    def _check_server(self) -> None:
        """A server that does not answer is one clear error now, not minutes of the
        client's retries."""
        if urlsplit(self.tracking_uri).scheme not in ("http", "https"):
            return
        import httpx

        url = self.tracking_uri.rstrip("/") + "/health"
        try:
            response = httpx.get(url, timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise ExportError(f"the MLflow tracking server at {self.tracking_uri} does not "
                              f"answer ({type(exc).__name__}: {exc})",
                              hint="start it (mlflow server ...) or fix --tracking-uri"
                              ) from exc
        if response.status_code >= 500 or response.status_code == 404:
            raise ExportError(f"{url} answered HTTP {response.status_code}: not a working "
                              f"MLflow tracking server",
                              hint="check --tracking-uri (the server's base URL)")

    @contextlib.contextmanager
    def _errors(self, mlflow: Any) -> Iterator[None]:
        """MLflow's exceptions as one-line ExportErrors; what MLflow prints (run URLs)
        kept off stdout, which is the CLI's."""
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        except mlflow.exceptions.MlflowException as exc:
            cause = " ".join(str(exc.message if hasattr(exc, "message") else exc).split())
            raise ExportError(f"MLflow at {self.tracking_uri} refused the export: "
                              f"{cause[:300]}",
                              hint="check the server's log, --experiment and the "
                                   "MLFLOW_TRACKING_* credentials") from exc
        except OSError as exc:  # an artifact upload cut off, a log file unreadable
            raise ExportError(f"exporting to MLflow at {self.tracking_uri} failed: {exc}",
                              hint="rerun the export: what was logged is kept, "
                                   "the rest is added") from exc

    def _experiment_id(self, client: Any) -> str:
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            return str(client.create_experiment(self.experiment))
        if experiment.lifecycle_stage != "active":
            raise ExportError(f"MLflow experiment {self.experiment!r} is deleted",
                              hint="restore it in MLflow, or pass another --experiment")
        return str(experiment.experiment_id)

    def _existing(self, client: Any, experiment_id: str, test_id: str) -> str | None:
        """The MLflow run id of the test's finished run in the experiment, if any; a run
        an interrupted export left RUNNING is deleted (it is logged again)."""
        quoted = test_id.replace("'", "\\'")
        runs = client.search_runs([experiment_id],
                                  filter_string=f"tags.`{TEST_ID_TAG}` = '{quoted}'",
                                  max_results=10)
        found = None
        for run in runs:
            if run.info.status == "RUNNING":
                client.delete_run(run.info.run_id)
            elif found is None:
                found = str(run.info.run_id)
        return found

    def _log(self, mlflow: Any, client: Any, experiment_id: str, run: TrackedRun) -> str:
        from mlflow.entities import Metric, Param, RunTag

        param_max, tag_max, key_max = _limits()
        cut = sorted(key for key, value in run.params.items() if len(value) > param_max)
        tags = {key[:key_max]: _cut(value, tag_max) for key, value in run.tags.items()}
        tags[TEST_ID_TAG] = run.test_id
        if cut:
            tags[TRUNCATED_TAG] = _cut(", ".join(cut), tag_max)
        created = client.create_run(experiment_id, start_time=run.started_ms,
                                    tags={TEST_ID_TAG: run.test_id}, run_name=run.test_id)
        mlflow_run_id = str(created.info.run_id)
        stamp = run.finished_ms or run.started_ms
        client.log_batch(
            mlflow_run_id,
            metrics=[Metric(key[:key_max], value, stamp, 0)
                     for key, value in run.metrics.items()],
            params=[Param(key[:key_max], _cut(value, param_max))
                    for key, value in run.params.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
        if run.artifacts:
            for path in run.artifacts:
                client.log_artifact(mlflow_run_id, str(path), artifact_path=ARTIFACT_PATH)
        client.set_terminated(mlflow_run_id, "FAILED" if run.status == "FAILED"
                              else "FINISHED", end_time=run.finished_ms)
        return mlflow_run_id


__all__ = ["DEFAULT_EXPERIMENT", "TEST_ID_TAG", "MlflowExporter", "check_tracking_uri"]
