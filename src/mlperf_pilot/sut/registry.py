"""The SUT kinds: ``RunSpec.sut.kind`` -> its plugin (``mlperf_pilot.sut.kind.SutKind``).

Built-in: ``local`` (an in-process backend). Other installed packages add kinds through
the entry-point group ``mlperf_pilot.suts``; tests register theirs with
``SUT_KINDS.register``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlperf_pilot.registry import Registry

if TYPE_CHECKING:
    from mlperf_pilot.sut.kind import SutKind

SUT_KINDS: Registry[type[SutKind]] = Registry(
    "SUT kind", {"local": "mlperf_pilot.sut.local_kind:LocalKind"},
    group="mlperf_pilot.suts",
)


def sut_kind(name: str) -> type[SutKind]:
    return SUT_KINDS.get(name)


__all__ = ["SUT_KINDS", "sut_kind"]
