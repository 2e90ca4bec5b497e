"""The engine: plan -> prepare -> one session per scenario, each LoadGen test a
self-contained job run by a launcher, everything reported through one observer.

    plan_run (engine.plan)      RunSpec + catalog -> RunPlan, every name checked first
    prepare_run (engine.prepare) dataset, preprocessing, the SUT kind's prepare -> PreparedRun
    ScenarioSession (engine.session) user.conf, modes, reruns/find, compliance
    Launcher (engine.launch)    SubprocessLauncher (engine.child in a fresh process) | Inline
    RunObserver (engine.events) progress, notes, records, compliance results -> listeners
"""

from mlperf_pilot.engine.events import RunObserver, RunSummary
from mlperf_pilot.engine.launch import InlineLauncher, Launcher, SubprocessLauncher
from mlperf_pilot.engine.plan import RunPlan, plan_run, resolve_spec
from mlperf_pilot.engine.run import Engine, run_benchmark

__all__ = ["Engine", "InlineLauncher", "Launcher", "RunObserver", "RunPlan", "RunSummary",
           "SubprocessLauncher", "plan_run", "resolve_spec", "run_benchmark"]
