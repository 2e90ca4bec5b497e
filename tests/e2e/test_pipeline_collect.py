"""`pipeline step-results` and `pipeline collect` on the results of a real run.

One real `mlperf-pilot run` of a tiny ONNX classifier (tests/builders.py) through the
real LoadGen writes a results folder, as a pipeline's run step writes its workspace;
the verdict step then writes the Tekton results and prints the scenario's folder to its
log. Collecting from the log (saved with `tkn`'s prefixes) and from a copy of the
workspace brings the same files back and into the results store, once.
"""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import pytest

from cli_runner import Cli

SCENARIO = "SingleStream"


@pytest.fixture
def workspace(cli: Cli, tmp_path: Path, logits_model: Path, colour_imagenet: Path,
              monkeypatch: pytest.MonkeyPatch) -> Path:
    """The results workspace of a finished run step: ws/results/<system>/<model>/<S>/."""
    monkeypatch.setenv("MLPERF_PILOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLPERF_PILOT_STORE", raising=False)
    ws = tmp_path / "ws"
    result = cli("run", "--model-path", logits_model, "--dataset-path", colour_imagenet,
                 "--scenario", SCENARIO, "--mode", "both", "--duration-ms", "300",
                 "--results-dir", ws / "results")
    assert result.code in (0, 1), result.err  # 1: INVALID on a loaded machine, still kept
    return ws


def _scenario_folder(results: Path) -> Path:
    (folder,) = list(results.glob(f"*/*/{SCENARIO}"))
    return folder


def _store_tests(results: Path) -> list[dict]:
    from mlperf_pilot.results.store import open_store

    return list(open_store(results_dir=results).rows())


def test_step_results_then_collect_from_pod_logs(cli: Cli, tmp_path: Path,
                                                 workspace: Path) -> None:
    results = workspace / "results"
    records = [json.loads(p.read_text()) for p in
               sorted((_scenario_folder(results) / "records").glob("*.json"))]
    assert {r["mode"] for r in records} == {"accuracy", "performance"}
    metric, verdict = tmp_path / "metric", tmp_path / "verdict"
    step = cli("pipeline", "step-results", "--results-dir", results, "--scenario",
               SCENARIO.lower(), "--metric-file", metric, "--verdict-file", verdict)
    expected = "VALID" if all(r["status"] == "VALID" for r in records) else "INVALID"
    assert verdict.read_text() == expected
    assert step.code == (0 if expected == "VALID" else 1)
    performance = next(r for r in records if r["mode"] == "performance")
    assert metric.read_text().split()[0] == f"{performance['metric_value']:.6g}"
    # the pod log as `tkn pipelinerun logs` shows it: each line prefixed
    log = tmp_path / "pipelinerun.log"
    log.write_text("".join(f"[run : step-verdict] {line}\n" for line in
                           ["starting", *step.out.splitlines(), "done"]))
    back = tmp_path / "back"
    collected = cli("pipeline", "collect", "--from", log, "--results-dir", back)
    assert collected.code == 0, collected.err
    assert "2 tests added" in collected.out
    original, copy = _scenario_folder(results), _scenario_folder(back)
    for name in ("accuracy/mlperf_log_detail.txt", "performance/run_1/mlperf_log_summary.txt",
                 "records/performance.json", "run_spec.json"):
        assert filecmp.cmp(original / name, copy / name, shallow=False), name
    tests = _store_tests(back)
    assert sorted(t["mode"] for t in tests) == ["accuracy", "performance"]
    assert all(Path(t["log_dir"]).is_relative_to(back.resolve()) for t in tests)
    # again: the folder is kept, nothing is added twice
    again = cli("pipeline", "collect", "--from", log, "--results-dir", back)
    assert again.code == 0 and "kept" in again.out and len(_store_tests(back)) == 2
    # a log cut short carries nothing
    cut = tmp_path / "cut.log"
    cut.write_text("\n".join(log.read_text().splitlines()[:-3]) + "\n")
    short = cli("pipeline", "collect", "--from", cut, "--results-dir", tmp_path / "none")
    assert short.code == 2 and "no results in" in short.err


def test_collect_from_a_copied_workspace(cli: Cli, tmp_path: Path, workspace: Path) -> None:
    copied = tmp_path / "copied"  # as `kubectl cp POD:/data copied` leaves it
    shutil.copytree(workspace, copied)
    # a submission's logs beside the results hold the same folder shape: not collected
    scenario = _scenario_folder(copied / "results")
    shutil.copytree(scenario, copied / "results" / "submission_logs" / "open" / "x" /
                    "results" / scenario.relative_to(copied / "results"))
    target = tmp_path / "results"
    result = cli("pipeline", "collect", "--from", copied, "--results-dir", target)
    assert result.code == 0, result.err
    assert result.out.count("collected ") == 1
    original, copy = _scenario_folder(workspace / "results"), _scenario_folder(target)
    assert filecmp.cmp(original / "records" / "accuracy.json",
                       copy / "records" / "accuracy.json", shallow=False)
    assert not list(copy.rglob("*.sqlite"))  # the pod's store stays behind; ours has them
    assert len(_store_tests(target)) == 2
    replaced = cli("pipeline", "collect", "--from", copied, "--results-dir", target,
                   "--replace", "--no-store")
    assert replaced.code == 0 and "collected" in replaced.out and "tests added" not in \
        replaced.out


def test_step_results_without_a_run(cli: Cli, tmp_path: Path) -> None:
    verdict = tmp_path / "verdict"
    result = cli("pipeline", "step-results", "--results-dir", tmp_path, "--scenario",
                 "Offline", "--verdict-file", verdict)
    assert result.code == 1 and verdict.read_text() == "FAILED"


def test_the_rendered_kubernetes_run_script_really_runs(cli: Cli, tmp_path: Path,
                                                         logits_model: Path,
                                                         colour_imagenet: Path) -> None:
    """The Indexed Job's init container and script, run by sh here with the data volume
    at a temp folder: the fetch, the real run, the verdict in the log, the finished mark;
    then `pipeline collect` from that log."""
    import os
    import subprocess
    import sys

    import yaml

    out = tmp_path / "jobs"
    rendered = cli("pipeline", "render", "--target", "k8s", "--model-path", logits_model,
                   "--dataset-path", colour_imagenet, "--scenario", SCENARIO, "--mode",
                   "both", "--duration-ms", "300", "--out", out)
    assert rendered.code == 0, rendered.err
    job = yaml.safe_load((out / "03-job-mlperf-run.yaml").read_text())
    pod = job["spec"]["template"]["spec"]
    data = tmp_path / "data"

    def here(word: str) -> str:
        return word.replace("/data/", f"{data}/")

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "JOB_COMPLETION_INDEX": "0"}
    env.pop("MLPERF_PILOT_STORE", None)
    env.pop("MLPERF_PILOT_CACHE", None)
    fetch = subprocess.run([here(w) for w in pod["initContainers"][0]["command"]],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert fetch.returncode == 0, fetch.stderr
    assert (data / "assets").is_dir()
    script = here(pod["containers"][0]["command"][2])
    run = subprocess.run(["/bin/sh", "-c", script], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    folder = _scenario_folder(data / "results")
    records = [json.loads(p.read_text()) for p in sorted((folder / "records").glob("*.json"))]
    valid = all(r["status"] == "VALID" for r in records) and len(records) == 2
    assert run.returncode == (0 if valid else 1), run.stderr
    assert (data / "results" / ".finished" / SCENARIO).is_file()
    log = tmp_path / "job.log"
    log.write_text("".join(f"[pod/mlperf-run-0-abcde/run] {line}\n"
                           for line in run.stdout.splitlines()))
    back = tmp_path / "back"
    collected = cli("pipeline", "collect", "--from", log, "--results-dir", back)
    assert collected.code == 0 and "2 tests added" in collected.out, collected.err
    assert (_scenario_folder(back) / "accuracy" / "mlperf_log_accuracy.json").is_file()


def test_the_rendered_tekton_steps_really_run(cli: Cli, tmp_path: Path, logits_model: Path,
                                              colour_imagenet: Path) -> None:
    """The assets and run Tasks' steps as Tekton runs them (its variables replaced by
    the workspace and result paths it would give): the Tekton results are written."""
    import os
    import subprocess
    import sys

    import yaml

    out = tmp_path / "tekton"
    rendered = cli("pipeline", "render", "--model-path", logits_model, "--dataset-path",
                   colour_imagenet, "--scenario", SCENARIO, "--mode", "both",
                   "--duration-ms", "300", "--git-url", "https://git.example.com/x.git",
                   "--out", out)
    assert rendered.code == 0, rendered.err
    ws = tmp_path / "workspace"
    values = {"$(params.scenario)": SCENARIO, "$(workspaces.assets.path)": f"{ws}/assets",
              "$(workspaces.results.path)": f"{ws}/results",
              "$(results.metric.path)": f"{tmp_path}/metric",
              "$(results.verdict.path)": f"{tmp_path}/verdict"}

    def tekton(word: str) -> str:
        for name, value in values.items():
            word = word.replace(name, value)
        return word

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLPERF_PILOT_STORE", None)
    codes = []
    for task in ("02-task-mlperf-assets.yaml", "03-task-mlperf-run.yaml"):
        for step in yaml.safe_load((out / task).read_text())["spec"]["steps"]:
            argv = [tekton(w) for w in step["command"] + step["args"]]
            assert "$(" not in " ".join(argv)
            done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True,
                                  text=True, timeout=600)
            codes.append(done.returncode)
            assert done.returncode == 0 or step.get("onError") == "continue" or \
                step["name"] == "verdict", done.stderr
    verdict = (tmp_path / "verdict").read_text()
    assert verdict in ("VALID", "INVALID")
    assert codes[-1] == (0 if verdict == "VALID" else 1)
    performance = json.loads((_scenario_folder(ws / "results") / "records" /
                              "performance.json").read_text())
    assert (tmp_path / "metric").read_text() == \
        f"{performance['metric_value']:.6g} {performance['metric_unit']}"


def test_collect_reads_a_pipelineruns_own_results(cli: Cli, tmp_path: Path) -> None:
    """`kubectl get pipelinerun NAME -o json`: its verdicts and metrics, nothing imported."""
    saved = tmp_path / "pr.json"
    saved.write_text(json.dumps({
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"name": "x"},
        "status": {"results": [{"name": "verdicts", "value": ["VALID", "INVALID"]},
                               {"name": "metrics", "value": ["812 samples/s", "0.9 ms"]}]}}))
    result = cli("pipeline", "collect", "--from", saved, "--results-dir", tmp_path / "r")
    assert result.code == 0
    assert "verdicts: VALID, INVALID" in result.out and "metrics: 812 samples/s" in result.out
    assert "verdicts and metrics only" in result.err and not (tmp_path / "r").exists()
