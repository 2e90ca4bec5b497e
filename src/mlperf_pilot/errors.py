"""The whole exception hierarchy of mlperf-pilot.

::

    MlperfPilotError                 every error the tool raises on purpose
    ├── ConfigError                  bad flag, bad value, bad config file        (exit 2)
    │   ├── UnknownPluginError       unknown model/dataset/backend/... name      (exit 2)
    │   └── DeviceUnavailableError   the device asked for cannot be used         (exit 2)
    ├── MissingDependencyError       an optional package is not installed        (exit 2)
    ├── AssetError                   download, checksum, cache, conversion       (exit 1)
    │   ├── ChecksumError            a file's checksum or size is not the pinned one
    │   └── UnverifiedDownloadError  nothing could prove a download right: refused
    ├── DatasetError                 a data set cannot be used                    (exit 1)
    │   └── DatasetInputError        malformed list file, annotations, images    (exit 2)
    ├── BackendError                 model load or inference failed              (exit 1)
    ├── SutError                     the system under test failed                (exit 1)
    │   ├── SutTimeoutError
    │   └── SutConnectionError
    ├── LoadGenError                 LoadGen could not run or its logs are unreadable
    ├── AccuracyError                accuracy log unreadable or inconsistent
    ├── ComplianceError
    ├── SubmissionError              carries a list of findings
    ├── DeployError                  `serverless deploy/destroy` could not finish
    └── StoreError                   the results store is unreadable
        └── ResultsInUseError        another run is writing that results folder  (exit 2)

Every error carries a one-line ``message`` (the cause) and an optional ``hint`` (the
fix). Library code raises them; only ``mlperf_pilot.cli`` prints them and exits, with
``exit_code``. Third-party exceptions are translated at the boundary with
``raise ... from exc`` so the original stays available with ``--debug``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

EXIT_OK = 0
EXIT_FAILED = 1  # a run was INVALID or failed, or a check found errors
EXIT_USAGE = 2  # usage or configuration error


class MlperfPilotError(Exception):
    """Base class: a message (the cause) and a hint (the fix)."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(MlperfPilotError):
    """A flag, config value or file given by the user is not valid."""

    exit_code = EXIT_USAGE


class UnknownPluginError(ConfigError):
    """A name (model, dataset, backend, scenario, ...) that is not registered."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(
            f"unknown {kind} {name!r}",
            hint=f"valid {kind}s: {', '.join(self.valid) if self.valid else '(none)'}",
        )


class DeviceUnavailableError(ConfigError):
    """The device that was asked for is not the one a backend can use."""


class UnreachableTargetError(ConfigError):
    """A latency bound this machine cannot meet (shorter than its measured inferences),
    found before any LoadGen run."""


class MissingDependencyError(MlperfPilotError):
    """An optional package is needed for what was asked."""

    exit_code = EXIT_USAGE

    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        self.package = package
        self.extra = extra
        what = f" (needed for {purpose})" if purpose else ""
        fix = f"pip install 'mlperf-pilot[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{package} is not installed{what}", hint=fix)


class AssetError(MlperfPilotError):
    """A model or data file could not be fetched, verified, cached or converted."""


class ChecksumError(AssetError):
    """A file is not the one expected: its checksum (sha256, sha384, md5) or its size
    differs from the one pinned (by a card, the user, or the cache when it was made).
    A model download stops at it instead of trying the card's next mirror."""


class UnverifiedDownloadError(AssetError):
    """A download was refused because nothing could prove its bytes right: no checksum
    and plain http, or a body that does not say how long it is."""


class DatasetError(MlperfPilotError):
    """A dataset is missing, malformed, or one of its files cannot be read."""


class DatasetInputError(DatasetError):
    """The data set the user gave is malformed: its list file, annotations or an image
    (bad input, found before or while preprocessing: a usage error)."""

    exit_code = EXIT_USAGE


class BackendError(MlperfPilotError):
    """A backend could not load a model or run an inference."""


class SutError(MlperfPilotError):
    """The system under test failed."""


class SutTimeoutError(SutError):
    """The system under test did not answer in time."""


class SutConnectionError(SutError):
    """The system under test could not be reached."""


class LoadGenError(MlperfPilotError):
    """LoadGen could not be configured or run, or its logs cannot be read."""


class AccuracyError(MlperfPilotError):
    """An accuracy log cannot be read or does not match the dataset."""


class ComplianceError(MlperfPilotError):
    """A compliance test could not be run or verified."""


class SubmissionError(MlperfPilotError):
    """A submission tree is invalid; ``findings`` lists what is wrong."""

    def __init__(
        self, message: str, findings: Sequence[object] = (), hint: str | None = None
    ) -> None:
        super().__init__(message, hint)
        self.findings = list(findings)


class DeployError(MlperfPilotError):
    """Creating or removing the serverless pieces (bucket, queues, layers, functions,
    permissions, notifications) failed on the provider's side."""


class StoreError(MlperfPilotError):
    """The results store cannot be read or written."""


class ResultsInUseError(StoreError):
    """Another run is writing the same results folder (a usage error: choose another)."""

    exit_code = EXIT_USAGE


class ExportError(MlperfPilotError):
    """Stored tests could not be sent to an experiment tracker (MLflow, W&B): the server
    does not answer or refused them, or the tracker's files cannot be written."""
