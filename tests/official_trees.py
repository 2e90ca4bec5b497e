"""Submission trees in the layouts of real v5.0 and v5.1 submissions, from real LoadGen logs.

The LoadGen logs are produced here by the real LoadGen (a SUT that answers after a short
pause, about 0.4 s per run, VALID by LoadGen's own judgement, token latencies for the
LLM runs): every key, its order,
its metadata and the accuracy log are LoadGen's own. A valid submission needs a 600 s run
with the round's seeds and full sample counts, which cannot happen in a test, so the few
keys that say so are rewritten in place (:func:`patch_detail`); everything else stays as
LoadGen wrote it. The power files (PTD's ``spl.txt``, client/server session files) follow
the formats the PTD client writes.

Four trees, a few results each (:func:`build_round_trees`):

- v5.0 closed: resnet on an edge system (SingleStream, MultiStream inferred from the
  SingleStream run, Offline), with TEST01/TEST04; a bert-99 Offline result without its
  required SingleStream (invalid).
- v5.0 open: ``resnet50`` (the round's mapping), ``mobilenet-v2`` (the name fallback),
  ``my-classifier`` (model_mapping.json), ``llama2-70b-99`` (an LLM: Tokens/s, four
  accuracy metrics) and a run with the wrong seeds (invalid).
- v5.1 closed: llama2-70b-99 Offline and Server on a datacenter system (TEST06), resnet
  on an edge system with power on Offline and SingleStream.
- v5.1 open: ``efficientnet-fp32-lite0`` (the fallback), ``bert-99.9-int8`` (fallback),
  ``llama3_1-405b-fp8`` (fallback, LLM), ``resnet50`` SingleStream with power.
"""

from __future__ import annotations

import array
import atexit
import datetime as dt
import functools
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlperf_pilot.loadgen.run import quiet_log_settings
from mlperf_pilot.submission.rounds import Layout, load_round
from mlperf_pilot.submission.truncate import truncate_accuracy_dir
from submission_trees import system_json

SUBMITTER = "Acme"
PTD_TIME = "%m-%d-%Y %H:%M:%S.%f"

# accuracy.txt lines as each benchmark's accuracy script prints them
ACCURACY_TEXT = {
    "resnet": "accuracy=76.500%, good=38250, total=50000",
    "resnet-low": "accuracy=71.200%, good=35600, total=50000",
    "bert": "{\"exact_match\": 83.9, \"f1\": 91.02}",
    "llama2": ("{'rouge1': 44.6123, 'rouge2': 22.1042, 'rougeL': 28.8111, "
               "'rougeLsum': 42.0, 'gen_len': 27000000, 'gen_num': 24576, "
               "'gen_tok_len': 7100000, 'tokens_per_sample': 289.1}"),
    "llama3.1-405b": ("{'rougeL': 21.9, 'exact_match': 90.1, 'gen_len': 5000000, "
                      "'gen_num': 8313, 'gen_tok_len': 5200000, 'tokens_per_sample': 655.0}"),
}


# ------------------------------------------------------------------ real LoadGen output


def _run_loadgen(scenario: str, mode: str, out: Path, tokens: bool = False) -> None:
    import mlperf_loadgen as lg

    out.mkdir(parents=True, exist_ok=True)
    payload = array.array("B", bytes(range(16)))
    address, _ = payload.buffer_info()

    pause = {"Offline": 0.35, "SingleStream": 0.00012, "MultiStream": 0.0011}.get(scenario, 0)

    def issue(samples: list[Any]) -> None:
        time.sleep(pause)  # long enough for LoadGen's minimum duration to be met
        if tokens:
            lg.FirstTokenComplete([lg.QuerySampleResponse(s.id, address, 4, 1)
                                   for s in samples])
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, address, 16, 4)
                                     for s in samples])
        else:
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, address, 4)
                                     for s in samples])

    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, scenario)
    settings.mode = lg.TestMode.AccuracyOnly if mode == "accuracy" else \
        lg.TestMode.PerformanceOnly
    settings.min_duration_ms = 300
    settings.max_duration_ms = 3000
    settings.min_query_count = 700  # enough for early stopping
    settings.offline_expected_qps = 1000
    settings.server_target_qps = 4000
    settings.server_target_latency_ns = 100_000_000
    settings.single_stream_expected_latency_ns = 100_000
    settings.multi_stream_expected_latency_ns = 1_000_000
    settings.use_token_latencies = tokens
    log_settings = quiet_log_settings(out)
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(64, 64, lambda _: None, lambda _: None)
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings,
                                    str(out / "audit.config"))
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)


@functools.cache
def loadgen_logs() -> Path:
    """One real LoadGen run per kind, made once per test session."""
    out = Path(tempfile.mkdtemp(prefix="mlperf-pilot-loadgen-"))
    atexit.register(shutil.rmtree, out, True)
    for scenario in ("SingleStream", "MultiStream", "Offline", "Server"):
        _run_loadgen(scenario, "performance", out / f"{scenario}-performance")
    _run_loadgen("Offline", "accuracy", out / "Offline-accuracy")
    _run_loadgen("Offline", "performance", out / "Offline-llm", tokens=True)
    _run_loadgen("Server", "performance", out / "Server-llm", tokens=True)
    return out


def patch_detail(src: Path, dst: Path, values: dict[str, Any]) -> None:
    """Copy LoadGen's detail log, replacing the value of each key in ``values``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in src.read_text(encoding="utf-8").splitlines():
        prefix = ":::MLLOG "
        if line.startswith(prefix):
            entry = json.loads(line[len(prefix):])
            if entry["key"] in values:
                entry["value"] = values[entry["key"]]
                line = prefix + json.dumps(entry)
        lines.append(line)
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_value(detail: Path, key: str) -> Any:
    for line in detail.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line.split(" ", 1)[1])
        if entry["key"] == key:
            return entry["value"]
    raise KeyError(key)


# ------------------------------------------------------------------------- one result


@dataclass
class Result:
    benchmark: str  # the folder name
    scenario: str
    mlperf_model: str  # the official benchmark its rules come from
    accuracy: str = "resnet"
    run_scenario: str | None = None  # LoadGen scenario of the run (inferred results)
    llm: bool = False
    power: bool = False
    full_length: bool = True  # False: keep the real (wrong) seeds
    changes: dict[str, Any] = field(default_factory=dict)


def performance_keys(rules: Any, mlperf_model: str, scenario: str, division: str,
                     full_length: bool) -> dict[str, Any]:
    from mlperf_pilot.submission.rounds import common

    model = rules.models[mlperf_model]
    values: dict[str, Any] = {
        "effective_min_duration_ms": 600000,
        "effective_performance_sample_count": model.performance_sample_count,
    }
    if full_length:
        values.update({f"effective_{k}": v for k, v in rules.seeds.items()})
    if scenario == "Offline" and division == "closed":
        values["effective_samples_per_query"] = \
            common().offline_min_samples_per_query[mlperf_model]
    if scenario == "Server":
        values["effective_min_query_count"] = model.min_queries.get("Server", 1)
        bound = model.latency_constraint_ns.get("Server")
        values["effective_target_latency_ns"] = int(bound) if bound else 0
    if mlperf_model in common().equal_issue_models:
        values["effective_sample_concatenate_permutation"] = True
    return values


def write_power(perf_dir: Path, detail: Path, watts: float, session: str) -> None:
    """PTD's files for a power result: ranging and testing runs with their spl.txt, and
    the session's client/server files."""
    begin = dt.datetime.strptime(read_value(detail, "power_begin"), PTD_TIME)
    end = begin + dt.timedelta(seconds=601)
    patch_detail(detail, detail, {"power_end": end.strftime(PTD_TIME)[:-3]})
    shutil.copytree(detail.parent, perf_dir / "ranging", dirs_exist_ok=True)
    for run, mean in (("ranging", watts * 1.01), ("run_1", watts)):
        lines = []
        moment = begin - dt.timedelta(seconds=5)
        step = 0
        while moment < end + dt.timedelta(seconds=5):
            value = mean + (0.5 if step % 2 else -0.5)
            lines.append(f"Time,{moment.strftime(PTD_TIME)[:-3]},Watts,{value:.6f},"
                         f"Volts,230.100000,Amps,{value / 230.1:.6f},PF,0.990000,"
                         f"Mark,{session}_{'ranging' if run == 'ranging' else 'testing'}")
            moment += dt.timedelta(seconds=1)
            step += 1
        (perf_dir / run / "spl.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    power = perf_dir / "power"
    power.mkdir(parents=True, exist_ok=True)
    uuids = {"client": "1b6ed0ab-3c2f-4e3b-9a9b-2f6f3e1c7a10",
             "server": "6d0f1e52-8a4b-4a52-b1e3-5c9f0f6d2b21"}
    for side in ("client", "server"):
        (power / f"{side}.json").write_text(json.dumps({
            "version": "1.11.1", "timezone": 0, "modules": {}, "sources": {},
            "messages": [{"cmd": "mlcommons/power client v4", "reply":
                          "mlcommons/power server v4"}],
            "uuid": uuids, "session_name": session, "results": {},
            "phases": {"ranging": [], "testing": []}}, indent=2), encoding="utf-8")
        (power / f"{side}.log").write_text(
            f"{begin.strftime(PTD_TIME)[:-3]} {side}: session {session} started\n",
            encoding="utf-8")
    (power / "ptd_logs.txt").write_text(
        f"{begin.strftime(PTD_TIME)[:-3]}: Uncertainty checking for YokogawaWT310 is "
        f"activated\n{begin.strftime(PTD_TIME)[:-3]}: Go with mark '{session}_ranging'\n",
        encoding="utf-8")


def add_result(base: Path, layout: Layout, rules: Any, division: str, system: str,
               result: Result, compliance: list[str]) -> None:
    logs = loadgen_logs()
    run_scenario = result.run_scenario or result.scenario
    kind = "llm" if result.llm else "performance"
    source = logs / f"{run_scenario}-{kind}" / "mlperf_log_detail.txt"
    scen = base / layout.scenario_dir(system, result.benchmark, result.scenario)
    perf_dir = scen / "performance"
    keys = performance_keys(rules, result.mlperf_model, run_scenario, division,
                            result.full_length)
    keys.update(result.changes)
    patch_detail(source, perf_dir / "run_1" / "mlperf_log_detail.txt", keys)
    shutil.copyfile(source.with_name("mlperf_log_summary.txt"),
                    perf_dir / "run_1" / "mlperf_log_summary.txt")
    if result.power:
        write_power(perf_dir, perf_dir / "run_1" / "mlperf_log_detail.txt", 212.5,
                    f"{system}_{result.benchmark}_{result.scenario}")
    acc = scen / "accuracy"
    acc_source = logs / "Offline-accuracy"
    samples = rules.models[result.mlperf_model].samples_for(result.scenario)
    patch_detail(acc_source / "mlperf_log_detail.txt", acc / "mlperf_log_detail.txt",
                 {"effective_scenario": run_scenario, "qsl_reported_total_count": samples,
                  "effective_accuracy_sample_count": samples})
    for name in ("mlperf_log_summary.txt", "mlperf_log_accuracy.json"):
        shutil.copyfile(acc_source / name, acc / name)
    (acc / "accuracy.txt").write_text(ACCURACY_TEXT[result.accuracy] + "\n",
                                      encoding="utf-8")
    truncate_accuracy_dir(acc, None)  # the hash line, and the official truncation
    measure = base / layout.measurements_dir(system, result.benchmark, result.scenario)
    measure.mkdir(parents=True, exist_ok=True)
    (base / layout.measurements_json(system, result.benchmark, result.scenario)).write_text(
        json.dumps({"input_data_types": "fp32", "retraining": "no",
                    "starting_weights_filename": f"{result.benchmark}.onnx",
                    "weight_data_types": "fp32", "weight_transformations": "none"}),
        encoding="utf-8")
    (measure / "user.conf").write_text(f"*.{result.scenario}.min_duration = 600000\n",
                                       encoding="utf-8")
    (measure / "README.md").write_text(f"mlperf-pilot run --model {result.benchmark}\n",
                                       encoding="utf-8")
    for test in compliance:
        test_dir = base / layout.compliance_dir(system, result.benchmark,
                                                result.scenario) / test
        if test in ("TEST01", "TEST04"):
            run = test_dir / "performance" / "run_1"
            patch_detail(source, run / "mlperf_log_detail.txt", keys)
            shutil.copyfile(source.with_name("mlperf_log_summary.txt"),
                            run / "mlperf_log_summary.txt")
            (test_dir / "verify_performance.txt").write_text(
                "performance_ratio = 1.0021\nTEST PASS\n", encoding="utf-8")
        if test == "TEST01":
            (test_dir / "verify_accuracy.txt").write_text("TEST PASS\n", encoding="utf-8")
        if test == "TEST06":
            test_dir.mkdir(parents=True, exist_ok=True)
            (test_dir / "verify_accuracy.txt").write_text(
                "First token check pass: True\nEOS check pass: True\n"
                "Sample length check pass: True\nTEST06 verification complete\n",
                encoding="utf-8")


# -------------------------------------------------------------------------- the trees

TREES: dict[str, tuple[str, str, dict[str, tuple[str, list[Result]]]]] = {
    # name: (round, division, {system: (system_type, results)})
    "v5.0-closed": ("v5.0", "closed", {"edge1": ("edge", [
        Result("resnet", "SingleStream", "resnet"),
        Result("resnet", "MultiStream", "resnet", run_scenario="SingleStream"),
        Result("resnet", "Offline", "resnet"),
        Result("bert-99", "Offline", "bert-99", accuracy="bert"),
    ])}),
    "v5.0-open": ("v5.0", "open", {"laptop": ("edge", [
        Result("resnet50", "Offline", "resnet"),
        Result("mobilenet-v2", "SingleStream", "resnet", accuracy="resnet-low"),
        Result("my-classifier", "Offline", "resnet"),
        Result("llama2-70b-99", "Offline", "llama2-70b-99", accuracy="llama2", llm=True),
        Result("resnet50", "MultiStream", "resnet", full_length=False),
    ])}),
    "v5.1-closed": ("v5.1", "closed", {
        "dc1": ("datacenter", [
            Result("llama2-70b-99", "Offline", "llama2-70b-99", accuracy="llama2", llm=True),
            Result("llama2-70b-99", "Server", "llama2-70b-99", accuracy="llama2", llm=True),
        ]),
        "edge1": ("edge", [
            Result("resnet", "SingleStream", "resnet", power=True),
            Result("resnet", "MultiStream", "resnet"),
            Result("resnet", "Offline", "resnet", power=True),
        ]),
    }),
    "v5.1-open": ("v5.1", "open", {"edge1": ("edge", [
        Result("efficientnet-fp32-lite0", "Offline", "resnet", accuracy="resnet-low"),
        Result("bert-99.9-int8", "Offline", "bert-99.9", accuracy="bert"),
        Result("llama3_1-405b-fp8", "Offline", "llama3.1-405b", accuracy="llama3.1-405b",
               llm=True),
        Result("resnet50", "SingleStream", "resnet", power=True),
    ])}),
}
MODEL_MAPPING = {"my-classifier": "resnet"}  # the open trees' model_mapping.json


def build_round_tree(root: Path, name: str) -> tuple[Path, str]:
    """Build one of :data:`TREES` under ``root``; returns (tree, round)."""
    round_name, division, systems = TREES[name]
    rules = load_round(round_name)
    layout = rules.layout
    base = root / division / SUBMITTER
    (base / "systems").mkdir(parents=True)
    for system, (system_type, results) in systems.items():
        (base / "systems" / f"{system}.json").write_text(json.dumps(
            system_json(division, system_type=system_type, system_name=system.upper())))
        for result in results:
            tests = [] if division == "open" else \
                rules.models[result.mlperf_model].compliance_tests
            add_result(base, layout, rules, division, system, result, tests)
            code = base / layout.source_dir / result.benchmark
            code.mkdir(parents=True, exist_ok=True)
            (code / "README.md").write_text("pip install mlperf-pilot\n", encoding="utf-8")
    if division == "open":
        (base / "model_mapping.json").write_text(json.dumps(MODEL_MAPPING), encoding="utf-8")
    (base / layout.calibration).parent.mkdir(parents=True, exist_ok=True)
    (base / layout.calibration).write_text("No quantization.\n", encoding="utf-8")
    return root, round_name


def expected_mlperf_models(name: str) -> dict[str, str]:
    """{benchmark folder: the official benchmark it resolves to} for a tree."""
    return {r.benchmark: r.mlperf_model for _, results in TREES[name][2].values()
            for r in results}
