"""The SUT kinds: ``RunSpec.sut.kind`` -> its plugin (``mlperf_pilot.sut.kind.SutKind``).

Built-in: ``local`` (an in-process backend), ``oip`` (an Open Inference Protocol
v2 server over the network) and ``serverless`` (functions reached through object
storage: AWS Lambda + S3, or local functions). Other installed packages add kinds through
the entry-point group ``mlperf_pilot.suts``; tests register theirs with
``SUT_KINDS.register``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlperf_pilot.errors import ConfigError
from mlperf_pilot.registry import Registry

if TYPE_CHECKING:
    from mlperf_pilot.sut.kind import SutKind

SUT_KINDS: Registry[type[SutKind]] = Registry(
    "SUT kind", {"local": "mlperf_pilot.sut.local_kind:LocalKind",
                 "oip": "mlperf_pilot.sut.oip_kind:OipKind",
                 "serverless": "mlperf_pilot.sut.serverless_kind:ServerlessKind"},
    group="mlperf_pilot.suts",
)


def sut_kind(name: str) -> type[SutKind]:
    """The plugin of a SUT kind; one from another package must be a ``SutKind``."""
    from mlperf_pilot.sut.kind import SutKind

    cls = SUT_KINDS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, SutKind)):
        raise ConfigError(
            f"the SUT kind {name!r} ({SUT_KINDS.origin(name)}) is not a SutKind class",
            hint="its entry point must name a subclass of mlperf_pilot.sut.kind.SutKind",
        )
    return cls


__all__ = ["SUT_KINDS", "sut_kind"]
