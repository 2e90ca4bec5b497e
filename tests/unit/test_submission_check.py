"""Every checker rule, with a tree that passes it and one that breaks it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders import SHARED_DATA
from mlperf_pilot.submission.check import CheckOptions, check_submission, summary_rows
from submission_trees import (
    ALSO,
    CASES,
    build_tree,
    detail_line,
    perf,
    performance_values,
    result_dir,
    set_system,
    write_detail,
)


def rules_of(root: Path, round_name: str = "v6.1", **options: object) -> set[str]:
    report = check_submission(root, CheckOptions(round=round_name, **options))  # type: ignore[arg-type]
    return {f.rule for f in report.errors}


@pytest.mark.parametrize("round_name", ["v6.1", "v6.0", "v5.1", "v5.0"])
def test_a_complete_tree_passes(tmp_path: Path, round_name: str) -> None:
    root = build_tree(tmp_path, round_name)
    report = check_submission(root, CheckOptions(round=round_name))
    assert report.errors == [], [f.message for f in report.errors]
    assert len(report.verdicts) == 3 and report.ok
    rows = summary_rows(report)
    offline = next(r for r in rows if r["Scenario"] == "Offline")
    assert offline["Result"] == pytest.approx(123.5) and offline["Units"] == "Samples/s"
    single = next(r for r in rows if r["Scenario"] == "SingleStream")
    assert single["Result"] == pytest.approx(4.5) and single["Units"] == "Latency (ms)"


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rule_fires_on_its_own(tmp_path: Path, case: str) -> None:
    mutate, rule = CASES[case]
    root = build_tree(tmp_path)
    mutate(root)
    found = rules_of(root)
    assert rule in found, found
    # and nothing unrelated fires
    assert found <= {rule} | ALSO.get(case, set()), found


def test_open_division_accuracy_misses_are_warnings(tmp_path: Path) -> None:
    root = build_tree(tmp_path, division="open", compliance=False)
    acc = result_dir(root, "Offline", division="open") / "accuracy/accuracy.txt"
    acc.write_text(f"accuracy=10.000%, good=1, total=10\n\nhash={'a' * 64}\n")
    report = check_submission(root, CheckOptions(round="v6.1"))
    assert report.ok
    assert any(f.rule == "accuracy.target" and f.severity == "warning" for f in report.findings)


def test_open_division_does_not_need_compliance_or_all_scenarios(tmp_path: Path) -> None:
    root = build_tree(tmp_path, division="open", scenarios=("Offline",), compliance=False)
    assert rules_of(root) == set()


def test_submission_exceptions_tolerate_uncommitted_loadgen(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    write_detail(result_dir(root, "Offline") / "performance/run_1/mlperf_log_detail.txt",
                 performance_values("v6.1", "Offline"),
                 [detail_line("error_uncommitted_loadgen_changes",
                              "Loadgen built with uncommitted changes!", error=True)])
    assert "performance.loadgen-errors" in rules_of(root)
    assert rules_of(root, submission_exceptions=True) == set()


def test_inferred_multistream_from_singlestream_on_edge(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    perf(root, "MultiStream", effective_scenario="SingleStream")
    report = check_submission(root, CheckOptions(round="v6.1"))
    multi = next(v for v in report.verdicts if v.scenario == "MultiStream")
    assert multi.inferred and multi.valid
    assert multi.metric == pytest.approx(30.0 * 8)  # early-stopping ms estimate x 8
    set_system(root, system_type="datacenter")
    assert "performance.inferred" in rules_of(root)


# ---------------------------------------------------------------- the real shared tree


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not here")
def test_the_real_v5_0_tree_gets_the_official_checkers_verdicts() -> None:
    """Verdicts recorded from the official checker (tools/submission/submission_checker,
    --version v5.0, commit b66003e1) on this tree: 39 results, none valid; 39
    min-duration errors, 39 dataset-coverage errors, 16 results with 3 wrong seeds, one
    missing SDXL image set; 7 accuracy misses and 1 upper-limit miss (warnings: open)."""
    report = check_submission(SHARED_DATA, CheckOptions(round="v5.0"))
    assert len(report.verdicts) == 39 and not report.valid_results and not report.ok
    from collections import Counter

    counts = Counter((f.severity, f.rule) for f in report.findings)
    assert counts == Counter({
        ("error", "performance.seeds"): 48, ("error", "performance.min-duration"): 39,
        ("error", "accuracy.dataset"): 39, ("error", "accuracy.extra-files"): 1,
        ("warning", "accuracy.target"): 7, ("warning", "accuracy.upper-limit"): 1,
    })
    seeds = {f.result for f in report.findings if f.rule == "performance.seeds"}
    assert len(seeds) == 16
    assert summary_rows(report) == []


# ------------------------------------------------------- how the official checker reads a tree


@pytest.mark.parametrize(("round_name", "folder", "mapping", "expected"), [
    ("v5.1", "efficientnet-fp32-lite0", {}, "resnet"),  # the name fallback
    ("v5.1", "mobilenet-v2-int8", {}, "resnet"),
    ("v5.0", "resnet50", {"resnet50": "retinanet"}, "resnet"),  # the round's mapping wins
    ("v5.0", "my-net", {"my-net": "retinanet"}, "retinanet"),  # then the submitter's
    ("v5.1", "bert-99.9-int8", {}, "bert-99.9"),
    ("v5.1", "distil-bert-99", {}, "bert-99"),
    ("v5.1", "llama3_1-405b-fp8", {}, "llama3.1-405b"),
    ("v5.1", "llama3_1-8b", {}, "llama3.1-8b"),
    ("v5.1", "retinanet", {"retinanet": "resnet"}, "retinanet"),  # official names first
    ("v5.1", "my-detector", {}, "my-detector"),  # nothing fits: stays unknown
])
def test_model_names_resolve_as_the_official_checker_does(
        round_name: str, folder: str, mapping: dict[str, str], expected: str) -> None:
    from mlperf_pilot.submission.rounds import load_round

    assert load_round(round_name).mlperf_model(folder, mapping) == expected


def test_an_open_folder_found_by_the_name_fallback_is_a_benchmark(tmp_path: Path) -> None:
    root = build_tree(tmp_path, "v5.1", division="open", scenarios=("Offline",),
                      compliance=False)
    for tree in ("results", "measurements"):
        folder = root / "open" / "Acme" / tree / "box"
        (folder / "resnet").rename(folder / "efficientnet-fp32-lite0")
    report = check_submission(root, CheckOptions(round="v5.1"))
    assert [v.mlperf_model for v in report.verdicts] == ["resnet"]
    assert report.ok, [f.message for f in report.errors]


ROUND_TREES = ["v5.0-closed", "v5.0-open", "v5.1-closed", "v5.1-open"]
INVALID_IN_ROUND_TREES = {  # result folder: the rule that makes it invalid
    "closed/Acme/edge1/bert-99/Offline": "performance.scenarios",
    "open/Acme/laptop/resnet50/MultiStream": "performance.seeds",
}


@pytest.mark.parametrize("name", ROUND_TREES)
def test_real_round_trees_get_their_verdicts(tmp_path: Path, name: str) -> None:
    """Trees in the layouts of v5.0/v5.1 submissions built from real LoadGen logs."""
    from official_trees import build_round_tree, expected_mlperf_models

    root, round_name = build_round_tree(tmp_path, name)
    report = check_submission(root, CheckOptions(round=round_name))
    expected = expected_mlperf_models(name)
    assert {v.benchmark: v.mlperf_model for v in report.verdicts} == expected
    for v in report.verdicts:
        rule = INVALID_IN_ROUND_TREES.get(v.key)
        assert v.valid == (rule is None), (v.key, [f.message for f in v.findings])
        if rule:
            assert rule in {f.rule for f in v.findings if f.is_error}
    rows = summary_rows(report)
    for row in rows:
        llm = row["MlperfModel"].startswith(("llama", "mixtral"))
        if row["has_power"] and row["Units"] in ("Watts", "millijoules"):
            assert row["Units"] == ("Watts" if row["Scenario"] == "Offline" else
                                    "millijoules")
        elif llm:
            assert row["Units"] == "Tokens/s", row
        assert row["design_power_watts"] == ""  # v5.x reads no nameplate file


def test_llm_results_report_tokens_and_every_accuracy_metric(tmp_path: Path) -> None:
    from official_trees import build_round_tree

    root, round_name = build_round_tree(tmp_path, "v5.1-closed")
    rows = summary_rows(check_submission(root, CheckOptions(round=round_name)))
    server = next(r for r in rows if r["Model"] == "llama2-70b-99" and r["Scenario"] == "Server")
    assert server["Units"] == "Tokens/s"
    assert server["Accuracy"] == ("ROUGE1: 44.6123  ROUGE2: 22.1042  ROUGEL: 28.8111  "
                                  "TOKENS_PER_SAMPLE: 289.1")


def test_power_results_have_a_second_row_and_their_files_checked(tmp_path: Path) -> None:
    from official_trees import build_round_tree

    root, round_name = build_round_tree(tmp_path, "v5.1-closed")
    report = check_submission(root, CheckOptions(round=round_name))
    rows = [r for r in summary_rows(report) if r["Model"] == "resnet"]
    offline = [r for r in rows if r["Scenario"] == "Offline"]
    assert [(r["Units"], r["has_power"]) for r in offline] == [
        ("Samples/s", True), ("Watts", True)]
    assert offline[1]["Result"] == pytest.approx(212.5)  # the mean of the samples
    single = [r for r in rows if r["Scenario"] == "SingleStream"]
    assert [r["Units"] for r in single] == ["Latency (ms)", "millijoules"]
    assert [r["has_power"] for r in rows if r["Scenario"] == "MultiStream"] == [False]
    assert any(f.rule == "power.ptd" and not f.is_error for f in report.findings)

    power = root / "closed/Acme/results/edge1/resnet/Offline/performance"
    (power / "power" / "server.log").unlink()
    (power / "ranging" / "notes.txt").write_text("extra\n")
    report = check_submission(root, CheckOptions(round=round_name))
    offline_verdict = next(v for v in report.verdicts if v.key.endswith("resnet/Offline"))
    messages = [f.message for f in offline_verdict.findings if f.rule == "power.files"]
    assert len(messages) == 2 and not offline_verdict.valid
    assert any("server.log" in m for m in messages) and any("notes.txt" in m for m in messages)


def test_inferred_follows_the_rule_not_the_folder_case(tmp_path: Path) -> None:
    """The official CSV writes inferred=1 for a lower-case folder (case-sensitive
    comparison); the rule (and its verdict) compare case-insensitively, as we do."""
    root = build_tree(tmp_path, "v5.0", division="open", scenarios=("Offline",),
                      compliance=False)
    results = root / "open/Acme/results/box/resnet"
    (results / "Offline").rename(results / "offline")
    (root / "open/Acme/measurements/box/resnet/Offline").rename(
        root / "open/Acme/measurements/box/resnet/offline")
    rows = summary_rows(check_submission(root, CheckOptions(round="v5.0")))
    assert [(r["Scenario"], r["inferred"]) for r in rows] == [("offline", 0)]


# ------------------------------------------------------------- the accuracy log itself


def _truncated_form(tmp_path: Path, ending: str) -> str:
    entries = ",\n".join(f'{{ "seq_id" : {i}, "qsl_idx" : {i}, "data" : "00000000" }}'
                         for i in range(300))
    text = "[\n" + entries + ending
    return text[:4096] + "\n\n...\n\n" + text[-4096:]


@pytest.mark.parametrize(("case", "content", "problem"), [
    ("cut short", '[\n{ "seq_id" : 0, "qsl_idx" : 0, "data" : "0000', "cut short"),
    ("not JSON", "this is not a LoadGen log\n", "is not JSON"),
    ("wrong JSON", '{"seq_id": 0}\n', "list of"),
    ("binary", "\udcff", "UTF-8"),
])
def test_a_broken_accuracy_log_is_an_error(tmp_path: Path, case: str, content: str,
                                           problem: str) -> None:
    root = build_tree(tmp_path)
    log = result_dir(root, "Offline") / "accuracy/mlperf_log_accuracy.json"
    if case == "binary":
        log.write_bytes(b"\xff\xfe[\n]")
    else:
        log.write_text(content)
    report = check_submission(root, CheckOptions(round="v6.1"))
    found = [f for f in report.errors if f.rule == "accuracy.log-format"]
    assert len(found) == 1 and problem in found[0].message, [f.message for f in found]


def test_an_officially_truncated_log_passes_and_a_cut_one_does_not(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    log = result_dir(root, "Offline") / "accuracy/mlperf_log_accuracy.json"
    log.write_text(_truncated_form(tmp_path, "\n]\n"))
    assert "accuracy.log-format" not in rules_of(root)
    log.write_text(_truncated_form(tmp_path, ',\n{ "seq_id" : 300, "qsl_idx" : 3'))
    assert "accuracy.log-format" in rules_of(root)


def test_results_our_records_mark_bad_are_errors(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    path = result_dir(root, "Offline") / "measurements.json"
    data = json.loads(path.read_text())
    data["mlperf_pilot"] = {"records": {"performance": {
        "status": "VALID", "samples_failed": 0, "reasons": []}}}
    path.write_text(json.dumps(data))
    assert rules_of(root) == set()
    data["mlperf_pilot"]["records"]["performance"].update(
        status="INVALID", samples_failed=1897, reasons=["1897 sample(s) failed: boom"])
    path.write_text(json.dumps(data))
    report = check_submission(root, CheckOptions(round="v6.1"))
    found = [f for f in report.errors if f.rule == "measurements.records"]
    assert len(found) == 1 and "1897 failed sample(s)" in found[0].message
