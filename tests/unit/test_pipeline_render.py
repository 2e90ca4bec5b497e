"""`pipeline render`: golden manifests of the demo, resnet50 and retinanet, CPU and CUDA,
Tekton and Kubernetes, each passing `pipeline validate` (Tekton's CRD schemas and the real
kubernetes-validate, offline); the run steps' command lines give back the RunSpec.

The manifests are pinned in tests/golden/pipelines/<model>-<device>-<target>/ (nothing
needs normalising: a render writes no time, path or version into them; the image is given);
rerun with MLPERF_PILOT_UPDATE_GOLDEN=1 to rewrite them after an intended change, and read
the diff.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import yaml

from cli_runner import Cli
from mlperf_pilot.pipelines.validate import validate_folder

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "pipelines"
UPDATE = os.environ.get("MLPERF_PILOT_UPDATE_GOLDEN") == "1"
IMAGE = "registry.example.com/bench/mlperf-pilot:test"
GIT = "https://git.example.com/bench/mlperf-pilot.git"
MODELS = ("efficientnet-lite0-demo", "resnet50", "retinanet")
CASES = [(model, device, target) for model in MODELS for device in ("cpu", "cuda")
         for target in ("tekton", "k8s")]


def _render(cli: Cli, out: Path, model: str, device: str, target: str, *extra: str) -> None:
    result = cli("pipeline", "render", "--target", target, "--model", model, "--device",
                 device, "--image", IMAGE, "--registry-secret", "registry-robot",
                 "--namespace", "bench", "--git-url", GIT, "--out", out, *extra)
    assert result.code == 0, result.err


@pytest.mark.parametrize(("model", "device", "target"), CASES)
def test_rendered_manifests_match_golden_and_validate(cli: Cli, tmp_path: Path, model: str,
                                                      device: str, target: str) -> None:
    out = tmp_path / "out"
    _render(cli, out, model, device, target)
    golden = GOLDEN / f"{model}-{device}-{target}"
    written = {p.name: p.read_text(encoding="utf-8") for p in sorted(out.iterdir())}
    if UPDATE:
        golden.mkdir(parents=True, exist_ok=True)
        for old in golden.glob("*.yaml"):
            old.unlink()
        for name, text in written.items():
            (golden / name).write_text(text, encoding="utf-8")
    pinned = {p.name: p.read_text(encoding="utf-8") for p in sorted(golden.glob("*.yaml"))}
    assert written == pinned
    report = validate_folder(golden)
    assert report.findings == [] and report.objects == len(pinned)
    # the validator, through the CLI, says so too
    checked = cli("pipeline", "validate", golden)
    assert checked.code == 0 and "valid (" in checked.out


def _docs(folder: Path) -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))}


def test_tekton_shape(cli: Cli, tmp_path: Path) -> None:
    _render(cli, tmp_path / "t", "resnet50", "cuda", "tekton", "--scenario", "Offline",
            "--scenario", "Server")
    docs = _docs(tmp_path / "t")
    kinds = sorted(d["kind"] for d in docs.values())
    assert kinds == ["Pipeline", "PipelineRun", "ServiceAccount", "Task", "Task", "Task",
                     "Task"]
    tasks = {d["metadata"]["name"]: d for d in docs.values() if d["kind"] == "Task"}
    assert set(tasks) == {"mlperf-build", "mlperf-assets", "mlperf-run", "mlperf-submission"}
    # only the image build is privileged
    privileged = [(name, s["name"]) for name, t in tasks.items() for s in t["spec"]["steps"]
                  if (s.get("securityContext") or {}).get("privileged")]
    assert privileged == [("mlperf-build", "build-and-push")]
    build = tasks["mlperf-build"]["spec"]
    params = {p["name"]: p.get("default") for p in build["params"]}
    assert params["CONTAINERFILE"] == "Containerfile" and "BASE_IMAGE" in params
    script = build["steps"][0]["script"]
    assert '--build-arg "CUDA=$CUDA"' in script and "BASE_IMAGE=$BASE_IMAGE" in script
    run = tasks["mlperf-run"]["spec"]
    assert {r["name"] for r in run["results"]} == {"metric", "verdict"}
    limits = run["steps"][0]["computeResources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    assert run["steps"][0]["computeResources"]["requests"] == limits
    pipeline = next(d for d in docs.values() if d["kind"] == "Pipeline")["spec"]
    by_name = {t["name"]: t for t in pipeline["tasks"]}
    assert by_name["run"]["matrix"]["params"] == [
        {"name": "scenario", "value": ["$(params.scenarios[*])"]}]
    assert [t["name"] for t in pipeline["finally"]] == ["submission"]
    assert by_name["build"]["params"][-1] == {"name": "CUDA", "value": "1"}
    run_ = next(d for d in docs.values() if d["kind"] == "PipelineRun")["spec"]
    assert run_["taskRunTemplate"]["serviceAccountName"] == "mlperf-pilot"
    # the claim writable by the image's user; no pod-wide runAsNonRoot (the build is root)
    assert run_["taskRunTemplate"]["podTemplate"] == {"securityContext": {"fsGroup": 10001}}
    assert {"name": "scenarios", "value": ["Offline", "Server"]} in run_["params"]
    assert {"name": "dockerconfig", "secret": {"secretName": "registry-robot"}} in \
        run_["workspaces"]
    data = next(w for w in run_["workspaces"] if w["name"] == "data")
    assert data["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "50Gi"


def test_k8s_shape_and_existing_claim(cli: Cli, tmp_path: Path) -> None:
    _render(cli, tmp_path / "k", "retinanet", "cpu", "k8s", "--scenario", "all",
            "--pvc", "bench-data", "--storage-class", "fast")
    docs = _docs(tmp_path / "k")
    assert sorted(d["kind"] for d in docs.values()) == ["Job", "Job", "Job", "ServiceAccount"]
    run = next(d for d in docs.values() if d["metadata"]["name"] == "mlperf-run")["spec"]
    assert run["completionMode"] == "Indexed" and run["completions"] == 4
    assert run["parallelism"] == 1
    pod = run["template"]["spec"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "bench-data"
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    script = pod["containers"][0]["command"][2]
    assert "set -- SingleStream MultiStream Server Offline" in script
    # the claim is not defined in the folder: a warning, not an error
    report = validate_folder(tmp_path / "k")
    assert report.ok and {f.rule for f in report.findings} == {"claims.missing"}
    # the pods' group owns the claim (the image's user writes it); none: the cluster's
    assert pod["securityContext"] == {"fsGroup": 10001}
    _render(cli, tmp_path / "n", "retinanet", "cpu", "k8s", "--fs-group", "none")
    for doc in _docs(tmp_path / "n").values():
        if doc["kind"] == "Job":
            assert "securityContext" not in doc["spec"]["template"]["spec"]
    bad = cli("pipeline", "render", "--target", "k8s", "--fs-group", "staff", "--out",
              tmp_path / "b")
    assert bad.code == 2 and "'staff' is not a group id" in bad.err


def _run_lines(folder: Path) -> list[list[str]]:
    """The `mlperf-pilot run` argv of every rendered run step (Tekton args, k8s script)."""
    lines = []
    for doc in _docs(folder).values():
        if doc["kind"] == "Task" and doc["metadata"]["name"].endswith("-run"):
            step = doc["spec"]["steps"][0]
            lines.append(step["command"] + step["args"])
        if doc["kind"] == "Job" and doc["metadata"]["name"].endswith("-run"):
            script = doc["spec"]["template"]["spec"]["containers"][0]["command"][2]
            line = next(x for x in script.splitlines() if x.startswith("mlperf-pilot run"))
            lines.append(shlex.split(line.removesuffix(" || status=$?")))
    return lines


@pytest.mark.parametrize("target", ["tekton", "k8s"])
def test_run_step_is_a_run_line_giving_the_same_runspec(cli: Cli, tmp_path: Path,
                                                        target: str) -> None:
    """The step's command, parsed by the real `run` command, gives the RunSpec rendered."""
    from mlperf_pilot.cli.app import State
    from mlperf_pilot.cli.pipeline_cmd import spec_of
    from mlperf_pilot.cli.run_cmd import run

    given = ["--model", "resnet50", "--device", "cuda", "--max-batch-size", "8", "--mode",
             "performance", "--duration-ms", "2000", "--count", "64", "--set",
             "sut.batch_timeout_us=500", "--trace", "--scenario", "Server"]
    _render(cli, tmp_path / "p", "resnet50", "cuda", target, *given[4:])
    (line,) = _run_lines(tmp_path / "p")
    assert line[:2] == ["mlperf-pilot", "run"]
    words = [w.replace("$(params.scenario)", "Server").replace("$SCENARIO", "Server")
             for w in line[2:]]
    ctx = run.make_context("run", words)
    params = dict(ctx.params)
    state = State(None, False)
    rendered = spec_of(state, params.pop("config_file"), params.pop("set_items"),
                       {k: v for k, v in params.items() if k != "as_json"})
    ctx = run.make_context("run", given)
    params = dict(ctx.params)
    wanted = spec_of(state, params.pop("config_file"), params.pop("set_items"),
                     {k: v for k, v in params.items() if k != "as_json"})
    placed = {"results_dir", "cache_dir", "targets_file", "store"}
    # the line names the backend the plan chose (the card's), which `wanted` leaves to it
    assert rendered.sut.backend == "onnxruntime" and wanted.sut.backend is None
    wanted = wanted.model_copy(update={"sut": wanted.sut.model_copy(
        update={"backend": "onnxruntime"})})
    assert rendered.model_dump(exclude=placed) == wanted.model_dump(exclude=placed)
    assert rendered.sut.batch_timeout_us == 500 and rendered.trace


def test_render_refuses_bad_names_and_full_folders(cli: Cli, tmp_path: Path) -> None:
    bad = cli("pipeline", "render", "--target", "k8s", "--namespace", "Bench_NS", "--out",
              tmp_path / "x")
    assert bad.code == 2 and "--namespace 'Bench_NS' is not a Kubernetes name" in bad.err
    size = cli("pipeline", "render", "--target", "k8s", "--size", "lots", "--out",
               tmp_path / "x")
    assert size.code == 2 and "quantity" in size.err
    unknown = cli("pipeline", "render", "--target", "k8s", "--model", "no-such-model",
                  "--out", tmp_path / "x")
    assert unknown.code == 2
    no_git = cli("pipeline", "render", "--out", tmp_path / "y")
    assert no_git.code == 2 and "--git-url is missing" in no_git.err
    assert not (tmp_path / "y").exists()
    assert cli("pipeline", "render", "--out", tmp_path / "y", "--git-url", GIT).code == 0
    again = cli("pipeline", "render", "--out", tmp_path / "y", "--target", "k8s")
    assert again.code == 2 and "--force" in again.err
    forced = cli("pipeline", "render", "--out", tmp_path / "y", "--target", "k8s", "--force")
    assert forced.code == 0
    assert all("job" in p.name or "serviceaccount" in p.name or "persistentvolumeclaim"
               in p.name for p in (tmp_path / "y").iterdir())


def test_paths_inside_the_pods_are_not_checked_here(cli: Cli, tmp_path: Path) -> None:
    """--dataset-path names the data volume's folder in the pods: rendered as given."""
    _render(cli, tmp_path / "k", "resnet50", "cpu", "k8s", "--dataset-path",
            "/data/imagenet", "--scenario", "Offline")
    (line,) = _run_lines(tmp_path / "k")
    assert line[line.index("--dataset-path") + 1] == "/data/imagenet"
    fetch = _kind_named(tmp_path / "k", "mlperf-assets")["spec"]["template"]["spec"][
        "containers"][0]["command"]
    assert fetch[:3] == ["mlperf-pilot", "cache", "fetch"] and "/data/imagenet" in fetch


def _kind_named(folder: Path, name: str) -> dict:
    return next(d for d in _docs(folder).values() if d["metadata"]["name"] == name)
