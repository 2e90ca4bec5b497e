"""Where a sweep's jobs run: one module per executor, chosen by name through the
project's one registry idiom (:class:`~mlperf_pilot.registry.Registry`), so a new
scheduler (Ray) is one more module and one more line here. An executor's module (and its
library, e.g. submitit) is imported only when it is chosen."""

from __future__ import annotations

from mlperf_pilot.registry import Registry
from mlperf_pilot.sweep.executors.base import Executor, JobInfo

EXECUTORS: Registry[type[Executor]] = Registry("sweep executor", {
    "local": "mlperf_pilot.sweep.executors.local:LocalExecutor",
    "slurm": "mlperf_pilot.sweep.executors.slurm:SlurmExecutor",
    "ray": "mlperf_pilot.sweep.executors.ray:RayExecutor",
}, group="mlperf_pilot.sweep_executors")


def executor_class(name: str) -> type[Executor]:
    return EXECUTORS.get(name)


__all__ = ["EXECUTORS", "Executor", "JobInfo", "executor_class"]
