"""Small submission trees for checker tests, in MLPerf's exact file formats.

A closed-division tree that passes every rule of a round is built from LoadGen-format
detail logs whose keys carry the values a valid full-length run has (600 s, 1024
performance samples, the round's seeds, ...): a real run of that length cannot happen
in a test. Each test then breaks one rule and expects exactly that finding.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlperf_pilot.submission.rounds import load_round

SYSTEM = "box"
SUBMITTER = "Acme"


def detail_line(key: str, value: Any, *, error: bool = False, warning: bool = False) -> str:
    payload = {"key": key, "value": value, "time_ms": 1.0, "namespace": "mlperf::logging",
               "event_type": "POINT_IN_TIME",
               "metadata": {"is_error": error, "is_warning": warning, "file": "test.cc",
                            "line_no": 1, "pid": 1, "tid": 1}}
    return ":::MLLOG " + json.dumps(payload)


def write_detail(path: Path, values: dict[str, Any], extra_lines: list[str] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [detail_line(k, v) for k, v in values.items()] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")


def performance_values(round_name: str, scenario: str, **changes: Any) -> dict[str, Any]:
    rules = load_round(round_name)
    seeds = rules.seeds
    values: dict[str, Any] = {
        "loadgen_version": "6.0.17 @ test", "sut_name": "PyFastSUT",
        "effective_scenario": scenario, "effective_test_mode": "PerformanceOnly",
        "effective_performance_sample_count": 1024,
        "effective_qsl_rng_seed": seeds["qsl_rng_seed"],
        "effective_sample_index_rng_seed": seeds["sample_index_rng_seed"],
        "effective_schedule_rng_seed": seeds["schedule_rng_seed"],
        "effective_min_duration_ms": 600000, "effective_min_query_count": 1,
        "effective_samples_per_query": 24576 if scenario == "Offline" else 1,
        "effective_sample_concatenate_permutation": False,
        "effective_target_latency_ns": 15000000 if scenario == "Server" else 0,
        "early_stopping_met": True, "early_stopping_result": "Run successful.",
        "result_validity": "VALID", "result_min_duration_met": True,
        "result_min_queries_met": True,
        "result_99.00_percentile_latency_ns": 5000000,
        "result_mean_latency_ns": 4000000,
        "result_samples_per_second": 123.5,
        "result_completed_samples_per_sec": 100.0,
        "early_stopping_latency_ss": 4500000,
        "early_stopping_latency_ms": 30000000,
        "result_qps_without_loadgen_overhead": 220.0,
        "num_errors": 0,
    }
    values.update(changes)
    return values


def accuracy_values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"effective_scenario": "Offline",
                              "effective_test_mode": "AccuracyOnly",
                              "qsl_reported_total_count": 50000, "num_errors": 0}
    values.update(changes)
    return values


def system_json(division: str = "closed", **changes: Any) -> dict[str, Any]:
    from mlperf_pilot.submission.rounds import common

    data = {key: "x" for key in common().system_required_fields}
    data.update({"division": division, "submitter": SUBMITTER, "status": "available",
                 "system_name": "Box", "system_type": "edge", "number_of_nodes": "1",
                 "accelerators_per_node": "0", "host_processor_core_count": "2",
                 "host_processors_per_node": "1", "host_network_card_count": "1"})
    data.update(changes)
    return data


def build_tree(root: Path, round_name: str = "v6.1", division: str = "closed",
               scenarios: tuple[str, ...] = ("SingleStream", "MultiStream", "Offline"),
               benchmark: str = "resnet", compliance: bool = True) -> Path:
    """A tree that passes every rule of the round for an edge system."""
    rules = load_round(round_name)
    layout = rules.layout
    base = root / division / SUBMITTER
    (base / "systems").mkdir(parents=True)
    (base / "systems" / f"{SYSTEM}.json").write_text(json.dumps(system_json(division)))
    (base / layout.source_dir / benchmark).mkdir(parents=True)
    (base / layout.source_dir / benchmark / "README.md").write_text("code\n")
    target = rules.models[benchmark].accuracy_targets[0].value  # type: ignore[index]
    for scenario in scenarios:
        scen = base / layout.scenario_dir(SYSTEM, benchmark, scenario)
        write_detail(scen / "performance/run_1/mlperf_log_detail.txt",
                     performance_values(round_name, scenario))
        (scen / "performance/run_1/mlperf_log_summary.txt").write_text("Result is : VALID\n")
        acc = scen / "accuracy"
        write_detail(acc / "mlperf_log_detail.txt", accuracy_values(effective_scenario=scenario))
        (acc / "mlperf_log_summary.txt").write_text("\n")
        (acc / "mlperf_log_accuracy.json").write_text("[\n]\n")
        (acc / "accuracy.txt").write_text(
            f"accuracy={target + 0.5:.3f}%, good=1, total=1\n\nhash={'a' * 64}\n")
        measure = base / layout.measurements_dir(SYSTEM, benchmark, scenario)
        measure.mkdir(parents=True, exist_ok=True)
        (base / layout.measurements_json(SYSTEM, benchmark, scenario)).write_text(json.dumps({
            "input_data_types": "fp32", "retraining": "no",
            "starting_weights_filename": "resnet50_v1.onnx", "weight_data_types": "fp32",
            "weight_transformations": "none"}))
        (measure / "user.conf").write_text("# nothing overridden\n")
        (measure / "README.md").write_text("mlperf-pilot run ...\n")
        if compliance:
            comp = base / layout.compliance_dir(SYSTEM, benchmark, scenario)
            for test in rules.models[benchmark].compliance_tests:
                test_dir = comp / test
                write_detail(test_dir / "performance/run_1/mlperf_log_detail.txt",
                             performance_values(round_name, scenario))
                (test_dir / "performance/run_1/mlperf_log_summary.txt").write_text("VALID\n")
                (test_dir / "verify_performance.txt").write_text("TEST PASS\n")
                if test == "TEST01":
                    (test_dir / "verify_accuracy.txt").write_text("TEST PASS\n")
    return root


def result_dir(root: Path, scenario: str, round_name: str = "v6.1", division: str = "closed",
               benchmark: str = "resnet") -> Path:
    layout = load_round(round_name).layout
    return root / division / SUBMITTER / layout.scenario_dir(SYSTEM, benchmark, scenario)


# ------------------------------------------------ one broken rule per case (checker tests)


def perf(root: Path, scenario: str = "Offline", **changes: object) -> None:
    write_detail(result_dir(root, scenario) / "performance/run_1/mlperf_log_detail.txt",
                 performance_values("v6.1", scenario, **changes))


Mutation = Callable[[Path], None]
CASES: dict[str, tuple[Mutation, str]] = {
    "min duration": (lambda r: perf(r, effective_min_duration_ms=10000),
                     "performance.min-duration"),
    "sample count": (lambda r: perf(r, effective_performance_sample_count=500),
                     "performance.sample-count"),
    "seeds": (lambda r: perf(r, effective_qsl_rng_seed=1), "performance.seeds"),
    "offline samples": (lambda r: perf(r, effective_samples_per_query=1000),
                        "performance.offline-samples"),
    "early stopping": (lambda r: perf(r, "SingleStream", early_stopping_met=False),
                       "performance.early-stopping"),
    "loadgen errors": (lambda r: write_detail(
        result_dir(r, "Offline") / "performance/run_1/mlperf_log_detail.txt",
        performance_values("v6.1", "Offline"),
        [detail_line("error_invalid_config", "bad", error=True)]),
        "performance.loadgen-errors"),
    "missing perf log": (lambda r: (result_dir(r, "Offline") /
                                    "performance/run_1/mlperf_log_detail.txt").unlink(),
                         "performance.missing"),
    "accuracy below target": (lambda r: (result_dir(r, "Offline") / "accuracy/accuracy.txt")
                              .write_text(f"accuracy=50.000%, good=1, total=2\n\nhash={'a'*64}\n"),
                              "accuracy.target"),
    "no hash": (lambda r: (result_dir(r, "Offline") / "accuracy/accuracy.txt")
                .write_text("accuracy=80.000%, good=4, total=5\n"), "accuracy.hash"),
    "not truncated": (lambda r: (result_dir(r, "Offline") / "accuracy/mlperf_log_accuracy.json")
                      .write_text("[" + " " * 20000 + "]"), "accuracy.truncation"),
    "partial dataset": (lambda r: write_detail(
        result_dir(r, "Offline") / "accuracy/mlperf_log_detail.txt",
        accuracy_values(qsl_reported_total_count=500)), "accuracy.dataset"),
    "missing scenario": (lambda r: shutil.rmtree(result_dir(r, "MultiStream")),
                         "performance.scenarios"),
    "system status": (lambda r: set_system(r, status="final"), "system.status"),
    "system type": (lambda r: set_system(r, system_type="laptop"), "system.type"),
    "system field": (lambda r: set_system(r, drop="host_storage_type"), "system.fields"),
    "empty meaningful field": (lambda r: set_system(r, framework=""), "system.fields"),
    "submitter mismatch": (lambda r: set_system(r, submitter="Other"), "system.submitter"),
    "network mode in closed": (lambda r: set_system(r, is_network="true"),
                               "system.network-mode"),
    "measurements field": (lambda r: (result_dir(r, "Offline") / "measurements.json")
                           .write_text(json.dumps({"input_data_types": "fp32"})),
                           "measurements.fields"),
    "empty README": (lambda r: (result_dir(r, "Offline") / "README.md").write_text(""),
                     "measurements.files"),
    "no src": (lambda r: shutil.rmtree(r / "closed" / SUBMITTER / "src"),
               "measurements.source"),
    "missing compliance": (lambda r: shutil.rmtree(
        result_dir(r, "Offline") / "TEST04"), "compliance.missing"),
    "failed compliance": (lambda r: (result_dir(r, "Offline") / "TEST04" /
                                     "verify_performance.txt").write_text("TEST FAIL\n"),
                          "compliance.performance"),
    "TEST01 outputs differ": (lambda r: (result_dir(r, "Offline") / "TEST01" /
                                         "verify_accuracy.txt").write_text("TEST FAIL\n"),
                              "compliance.test01-accuracy"),
    "accuracy log cut short": (lambda r: (result_dir(r, "Offline") /
                                          "accuracy/mlperf_log_accuracy.json").write_text(
        '[\n{ "seq_id" : 0, "qsl_idx" : 7, "data" : "0A00'), "accuracy.log-format"),
    "accuracy log not JSON": (lambda r: (result_dir(r, "Offline") /
                                         "accuracy/mlperf_log_accuracy.json").write_text(
        "<html>502 Bad Gateway</html>\n"), "accuracy.log-format"),
    "records mark it invalid": (lambda r: mark_records(
        r, "INVALID", 1897, "1897 sample(s) failed: RuntimeError"), "measurements.records"),
}


def mark_records(root: Path, status: str, failed: int, reason: str,
                 scenario: str = "Offline") -> None:
    """What ``submission generate --include-invalid`` writes for a result our records
    mark bad."""
    path = result_dir(root, scenario) / "measurements.json"
    data = json.loads(path.read_text())
    data["mlperf_pilot"] = {"records": {"performance": {
        "status": status, "samples_failed": failed, "reasons": [reason]}}}
    path.write_text(json.dumps(data))


ALSO = {  # rules a case breaks besides its own, as the official checker does too
    "network mode in closed": {
        "performance.network-mode", "performance.network-sut-name",
        "compliance.performance.network-mode", "compliance.performance.network-sut-name",
        "system.fields"},  # a network system also needs the network fields
    "system type": {"performance.scenarios"},  # no scenario is required for "laptop"
}


def set_system(root: Path, drop: str | None = None, **changes: object) -> None:
    data = system_json("closed", **changes)
    if drop:
        del data[drop]
    (root / "closed" / SUBMITTER / "systems" / f"{SYSTEM}.json").write_text(json.dumps(data))


