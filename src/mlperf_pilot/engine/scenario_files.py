"""The files that describe one scenario's run: user.conf (rewritten whenever a
calibration or a rerun changes the targets), run_spec.json and versions.json."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.config import ExecutionMode, RunSpec, Scenario
from mlperf_pilot.errors import UnreachableTargetError
from mlperf_pilot.loadgen.settings import (
    MULTISTREAM_MIN_QUERIES,
    MULTISTREAM_SAMPLES_PER_QUERY,
    SERVER_BOUND_MIN_INFERENCES,
    SERVER_TEST_BOUND_BATCHES,
    Estimates,
    render_user_conf,
    server_bound_fits,
    user_conf_settings,
)
from mlperf_pilot.results.layout import ScenarioPaths
from mlperf_pilot.results.provenance import Provenance, Versions, write_run_spec, write_versions
from mlperf_pilot.results.staging import ScenarioStage
from mlperf_pilot.storage import write_text_atomic

if TYPE_CHECKING:
    from mlperf_pilot.engine.plan import RunPlan


@dataclass(frozen=True)
class UserConf:
    """Writes a scenario's user.conf from the spec, the dataset size and the warm-up
    estimates, with the targets given."""

    plan: RunPlan
    dataset_count: int
    estimates: Estimates

    @property
    def spec(self) -> RunSpec:
        return self.plan.spec

    @property
    def derives_server_bound(self) -> bool:
        """A demo model, or a model file given by path (an open-division model): a test
        run's Server bound comes from the warm-up, not from the official model's."""
        return self.plan.card.demo or bool(getattr(self.spec.sut, "model_path", None))

    def settings(self, scenario: Scenario, calibrated: dict[str, Any]) -> dict[str, float | int]:
        return user_conf_settings(
            self.spec, scenario,
            performance_sample_count=self.plan.card.performance_sample_count,
            dataset_count=self.dataset_count, estimates=self.estimates, calibrated=calibrated,
            derive_server_bound=self.derives_server_bound,
        )

    def check(self, scenarios: Iterable[Scenario]) -> list[str]:
        """Before any LoadGen run: notes saying what a test run chose for this machine,
        and a Server bound out of this machine's reach — refused in valid and find mode
        (:class:`UnreachableTargetError`: no retry can meet it), a note in test mode."""
        notes: list[str] = []
        for scenario in scenarios:
            keys = self.settings(scenario, {})
            if scenario is Scenario.SERVER:
                notes.extend(self._server_notes(keys))
            elif (scenario is Scenario.MULTI_STREAM and "samples_per_query" in keys
                  and self.spec.loadgen.samples_per_query is None):
                spq = int(keys["samples_per_query"])
                notes.append(
                    f"MultiStream: {spq} sample(s) per query for this test run, not "
                    f"{MULTISTREAM_SAMPLES_PER_QUERY}: LoadGen needs {MULTISTREAM_MIN_QUERIES} "
                    f"queries for its early-stopping estimate, about "
                    f"{self.estimates.multistream_latency_ms(spq):.3g} ms each here (valid mode "
                    f"keeps {MULTISTREAM_SAMPLES_PER_QUERY}; --set loadgen.samples_per_query=N "
                    "chooses)")
        return notes

    def unreachable_server_bound(self) -> float | None:
        """The Server bound this run uses (given, else the official one; a derived bound
        always fits) when the warm-up says it is out of this machine's reach, else None."""
        spec = self.spec
        if spec.loadgen.target_latency_ms is None and "target_latency" in self.settings(
                Scenario.SERVER, {}):
            return None  # derived from the warm-up
        bound = spec.loadgen.target_latency_ms or self.plan.card.server_target_latency_ms
        if not bound or server_bound_fits(bound, self.estimates.latency_ms):
            return None
        return bound

    def _server_notes(self, keys: dict[str, float | int]) -> list[str]:
        spec, card, est = self.spec, self.plan.card, self.estimates
        official = card.server_target_latency_ms
        if spec.loadgen.target_latency_ms is None and "target_latency" in keys:
            kind = "a demo" if card.demo else "an open-division"
            keep = (f"; valid mode keeps {card.mlperf_model}'s {official:g} ms"
                    if official else "")
            return [f"Server: latency bound {int(keys['target_latency'])} ms for this test "
                    f"run ({SERVER_TEST_BOUND_BATCHES} x the warm-up's {est.batch_latency_ms:.3g} "
                    f"ms per batch of {est.max_batch_size}: {card.name} is {kind} model), "
                    f"target {float(keys.get('target_qps', 0)):.4g} QPS{keep}"]
        bound = self.unreachable_server_bound()
        if bound is None:
            return []
        cause = (f"Server latency bound {bound:g} ms is out of reach on this machine: one "
                 f"inference takes {est.latency_ms:.3g} ms here (warm-up, batch 1), and a bound "
                 f"under {SERVER_BOUND_MIN_INFERENCES:g} inferences leaves no room for queueing")
        if spec.execution_mode is ExecutionMode.TEST:
            return [f"{cause}; this test run's Server result cannot be VALID "
                    "(--set loadgen.target_latency_ms=N sets a looser bound)"]
        raise UnreachableTargetError(
            cause, hint="leave Server out (--scenario Offline,SingleStream,MultiStream), use "
                        "a faster backend or device, or set a looser bound with --set "
                        "loadgen.target_latency_ms=N (open division, not the closed bound)")

    def rewrite(self, paths: ScenarioPaths, scenario: Scenario,
                calibrated: dict[str, Any]) -> dict[str, Any]:
        """user.conf with these targets; returns the targets it carries."""
        keys = self.settings(scenario, calibrated)
        self.write(paths, scenario, keys)
        return targets_of(keys, scenario)

    def write(self, paths: ScenarioPaths, scenario: Scenario,
              keys: dict[str, float | int], path: Path | None = None) -> None:
        card = self.plan.card
        header = (f"Generated by mlperf-pilot for {card.name} ({scenario.value}, "
                  f"execution mode {self.spec.execution_mode.value}).\n"
                  "Loaded with one TestSettings.FromConfig call after LoadGen's own mlperf.conf.")
        write_text_atomic(path or paths.user_conf,
                          render_user_conf(card.mlperf_model, scenario, keys, header))


def write_scenario_files(
    conf: UserConf, stage: ScenarioStage, paths: ScenarioPaths, scenario: Scenario,
    provenance: Provenance, versions: Versions, calibrated: dict[str, Any],
) -> dict[str, Any]:
    """user.conf, run_spec.json, versions.json; returns the targets user.conf uses.
    Beside a kept performance run they stay (they describe it): an accuracy run then
    gets records/accuracy.user.conf and records/accuracy.run_spec.json."""
    spec = conf.spec
    paths.root.mkdir(parents=True, exist_ok=True)
    if stage.carried_performance:
        if stage.redo_accuracy:
            keys = conf.settings(scenario, calibrated)
            paths.accuracy_user_conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write(paths, scenario, keys, path=paths.accuracy_user_conf)
            write_run_spec(paths.accuracy_user_conf.with_name("accuracy.run_spec.json"),
                           spec, provenance)
        return {}
    used = conf.rewrite(paths, scenario, calibrated)
    write_run_spec(paths.run_spec, spec, provenance)
    write_versions(paths.versions, versions)
    return used


def targets_of(keys: dict[str, float | int], scenario: Scenario) -> dict[str, Any]:
    """The targets a user.conf carries, in RunSpec units."""
    found: dict[str, Any] = {}
    if "target_qps" in keys:
        found["target_qps"] = keys["target_qps"]
    if "target_latency" in keys and scenario is not Scenario.SERVER:
        found["target_latency_ms"] = keys["target_latency"]
    return found


__all__ = ["UserConf", "targets_of", "write_scenario_files"]
