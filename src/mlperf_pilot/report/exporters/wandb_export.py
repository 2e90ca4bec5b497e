"""`results export --to wandb`: each stored test as one W&B run, written offline.

Through ``wandb`` (the ``wandb`` extra, imported only here) in offline mode: no account,
no network; the runs land under ``--wandb-dir DIR`` as ``DIR/wandb/offline-run-*``, and
``wandb sync DIR/wandb/offline-run-*`` uploads them later, from a machine that can reach
W&B. One W&B run per test (base.TrackedRun):

- run id = the test id (a hash of it where the id does not fit W&B's), name = the test
  id, group = the run id (the tests of one `mlperf-pilot run` together), job type = the
  mode, notes = the reasons, tags = status, scenario, mode, SUT kind;
- config = the resolved settings (nested as they are; secrets left out) and, under
  ``mlperf_pilot``, what the test was (the tags of base.tags_of: system, model,
  versions...);
- summary = the metrics (headline metric, latency percentiles, accuracy...);
- the files of the test's LoadGen log folder as an artifact ``loadgen-logs-<id>``.

Idempotent per folder: a test whose offline run is already in ``DIR/wandb`` is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mlperf_pilot.errors import ExportError
from mlperf_pilot.extras import import_extra
from mlperf_pilot.report.exporters.base import (
    ExportedTest,
    Exporter,
    ExportSummary,
    TrackedRun,
    tracked_run,
)
from mlperf_pilot.report.tables import StoredTestLike

DEFAULT_PROJECT = "mlperf-pilot"
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ARTIFACT_TYPE = "loadgen-logs"


def _wandb() -> Any:
    return import_extra("wandb", "wandb.errors", package="wandb", extra="wandb",
                        purpose="results export --to wandb")


def wandb_run_id(test_id: str) -> str:
    """The W&B run id of a test: its id where W&B takes it as is, else a hash of it."""
    if _RUN_ID.fullmatch(test_id):
        return test_id
    return "t" + hashlib.sha256(test_id.encode("utf-8")).hexdigest()[:31]


def offline_run_dir(directory: Path, test_id: str) -> Path | None:
    """The offline run a previous export wrote for ``test_id`` under ``directory``."""
    run_id = wandb_run_id(test_id)
    for found in sorted((Path(directory) / "wandb").glob(f"offline-run-*-{run_id}")):
        if (found / f"run-{run_id}.wandb").is_file():
            return found
    return None


class WandbExporter(Exporter):
    """Writes stored tests as offline W&B runs (see the module's docstring)."""

    name: ClassVar[str] = "wandb"
    extra: ClassVar[str] = "wandb"

    def __init__(self, *, directory: Path, project: str | None = None) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.project = project or DEFAULT_PROJECT

    @property
    def destination(self) -> str:
        return f"{self.directory / 'wandb'} (offline, project {self.project!r})"

    def export(self, tests: Sequence[StoredTestLike]) -> ExportSummary:
        wandb = _wandb()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot create the W&B folder {self.directory}: "
                              f"{exc.strerror or exc}",
                              hint="choose a writable --wandb-dir") from exc
        done: list[ExportedTest] = []
        for test in tests:
            run = tracked_run(test)
            existing = offline_run_dir(self.directory, run.test_id)
            if existing is not None:
                done.append(ExportedTest(run.test_id, str(existing), skipped=True))
                continue
            done.append(ExportedTest(run.test_id, self._write(wandb, run)))
        sync = f"wandb sync {self.directory / 'wandb'}/offline-run-*"
        return ExportSummary(
            self.name, self.destination, tuple(done),
            notes=(f"`{sync}` uploads them later (needs a W&B account and network)",),
            details={"directory": str(self.directory), "project": self.project,
                     "sync_command": sync})

    @contextlib.contextmanager
    def _quiet(self, wandb: Any) -> Iterator[None]:
        """W&B's own messages kept off stdout (the CLI's); its errors as ExportError."""
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        except (OSError, ValueError, RuntimeError, wandb.errors.Error) as exc:
            raise ExportError(f"writing the W&B run under {self.directory} failed: "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
                              hint="check --wandb-dir (free space, permissions), then "
                                   "rerun: runs written already are kept") from exc

    def _write(self, wandb: Any, run: TrackedRun) -> str:
        settings = wandb.Settings(
            mode="offline", silent=True, console="off", x_disable_stats=True,
            x_disable_meta=True, disable_git=True, save_code=False,
            disable_job_creation=True, x_save_requirements=False)
        run_id = wandb_run_id(run.test_id)
        config = {**run.settings, "mlperf_pilot": dict(run.tags)}
        labels = [run.status, run.tags.get("scenario", ""), run.tags.get("mode", ""),
                  run.tags.get("sut_kind", "")]
        with self._quiet(wandb):
            handle = wandb.init(
                project=self.project, dir=str(self.directory), id=run_id,
                name=run.test_id, group=run.run_id, job_type=run.tags.get("mode"),
                notes=run.tags.get("reasons") or None, config=config,
                tags=[label[:64] for label in labels if label], settings=settings,
                reinit="create_new")
            try:
                handle.summary.update(run.metrics)
                if run.artifacts:
                    artifact = wandb.Artifact(f"{ARTIFACT_TYPE}-{run_id}", type=ARTIFACT_TYPE)
                    for path in run.artifacts:
                        artifact.add_file(str(path), name=path.name)
                    handle.log_artifact(artifact)
                folder = Path(handle.dir).parent  # DIR/wandb/offline-run-<time>-<id>
            finally:
                handle.finish(exit_code=1 if run.status == "FAILED" else 0)
        return str(folder)


__all__ = ["DEFAULT_PROJECT", "WandbExporter", "offline_run_dir", "wandb_run_id"]
