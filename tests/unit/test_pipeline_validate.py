"""`pipeline validate`: one failing fixture per rule, each made from a golden (valid)
folder with one edit, found by the real checks: Tekton's v1 CRD schemas through
jsonschema, kubernetes-validate's offline schemas (strict), the semantic rules."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli_runner import Cli
from mlperf_pilot.pipelines.schema import json_schema
from mlperf_pilot.pipelines.semantic import param_name
from mlperf_pilot.pipelines.validate import validate_folder

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "pipelines"
TEKTON = GOLDEN / "efficientnet-lite0-demo-cpu-tekton"
K8S = GOLDEN / "efficientnet-lite0-demo-cpu-k8s"
Docs = dict[str, dict[str, Any]]


def _kind(docs: Docs, kind: str, name: str | None = None) -> dict[str, Any]:
    return next(d for d in docs.values() if d["kind"] == kind and
                (name is None or d["metadata"]["name"] == name))


def _ptask(docs: Docs, name: str) -> dict[str, Any]:
    spec = _kind(docs, "Pipeline")["spec"]
    return next(t for t in spec["tasks"] + spec["finally"] if t["name"] == name)


def _run_step(docs: Docs) -> dict[str, Any]:
    return _kind(docs, "Task", "mlperf-run")["spec"]["steps"][0]


def _set_runafter(docs: Docs, task: str, after: list[str]) -> None:
    _ptask(docs, task)["runAfter"] = after


def _cycle(docs: Docs) -> None:
    _set_runafter(docs, "fetch-source", ["run"])


def _matrix_too_many(docs: Docs) -> None:
    _ptask(docs, "run")["matrix"]["params"] = [
        {"name": "scenario", "value": [f"s{i}" for i in range(300)]}]


def _context(docs: Docs) -> None:
    _run_step(docs)["args"].append("$(context.pipelineRun.color)")


def _matrix_undeclared(docs: Docs) -> None:
    _ptask(docs, "run")["matrix"]["params"].append({"name": "backend", "value": ["a", "b"]})


def _unbound_pipeline_ws(docs: Docs) -> None:
    run = _kind(docs, "PipelineRun")["spec"]
    run["workspaces"] = [w for w in run["workspaces"] if w["name"] != "data"]


TEKTON_CASES: dict[str, tuple[Callable[[Docs], None], str, str]] = {
    "task ref": (lambda d: _ptask(d, "assets")["taskRef"].update(name="mlperf-asets"),
                 "ref.task-missing", "'mlperf-asets' is not defined in this folder"),
    "pipeline ref": (lambda d: _kind(d, "PipelineRun")["spec"]["pipelineRef"].update(
        name="nope"), "ref.pipeline-missing", "pipeline 'nope'"),
    "task param": (lambda d: _run_step(d)["args"].append("$(params.scenari)"),
                   "params.undeclared", "$(params.scenari) is not a param of the task"),
    "pipeline param": (lambda d: _ptask(d, "build")["params"][0].update(
        value="$(params.img)"), "params.undeclared", "is not a param of the pipeline"),
    "param unknown to task": (lambda d: _ptask(d, "assets")["params"].append(
        {"name": "colour", "value": "x"}), "params.unknown", "param 'colour'"),
    "required param": (lambda d: _ptask(d, "assets").update(params=[]), "params.missing",
                       "requires param 'image'"),
    "workspace var": (lambda d: _run_step(d)["args"].append("$(workspaces.cache.path)"),
                      "workspaces.undeclared", "$(workspaces.cache.path)"),
    "task workspace unbound": (lambda d: _ptask(d, "run").update(workspaces=[
        {"name": "assets", "workspace": "data"}]), "workspaces.unbound",
        "the task's workspace 'results' is not bound"),
    "pipeline workspace unbound": (_unbound_pipeline_ws, "workspaces.unbound",
                                   "the pipeline's workspace 'data' is not bound"),
    "binding to nothing": (lambda d: _ptask(d, "assets")["workspaces"][0].update(
        workspace="scratch"), "workspaces.unbound", "'scratch' is not a workspace"),
    "task result var": (lambda d: _run_step(d)["args"].append("$(results.score.path)"),
                        "results.undeclared", "$(results.score.path)"),
    "tasks result": (lambda d: _ptask(d, "assets")["params"][0].update(
        value="$(tasks.build.results.IMAGE_TAG)"), "results.undeclared",
        "task 'build' has no result 'IMAGE_TAG'"),
    "result of no task": (lambda d: _ptask(d, "assets")["params"][0].update(
        value="$(tasks.biuld.results.IMAGE_URL)"), "results.undeclared", "task 'biuld'"),
    "context": (_context, "context.unknown", "$(context.pipelineRun.color)"),
    "runAfter": (lambda d: _set_runafter(d, "run", ["asets"]), "runafter.missing",
                 "runAfter names 'asets'"),
    "cycle": (_cycle, "runafter.cycle", "fetch-source"),
    "matrix param": (_matrix_undeclared, "matrix.undeclared", "matrix param 'backend'"),
    "matrix not array": (lambda d: _ptask(d, "run")["matrix"]["params"][0].update(
        value="Offline"), "matrix.not-array", "is not an array"),
    "matrix too many": (_matrix_too_many, "matrix.too-many", "300 runs"),
    "name": (lambda d: _kind(d, "Task", "mlperf-build")["metadata"].update(
        name="MLPerf_Build"), "names.invalid", "'MLPerf_Build'"),
    "tekton unknown field": (lambda d: _run_step(d).update(imagePullPolicyy="Always"),
                             "schema.unknown-field", "'imagePullPolicyy' was unexpected"),
    "tekton type": (lambda d: _kind(d, "Pipeline")["spec"].update(tasks={"a": 1}),
                    "schema.type", "is not of type 'array'"),
    "old api": (lambda d: _kind(d, "Task", "mlperf-run").update(apiVersion="tekton.dev/"
                                                                "v1beta1"),
                "schema.api-version", "is not Tekton's v1 API"),
    "core unknown field": (lambda d: _kind(d, "ServiceAccount")["metadata"].update(
        labelz={"a": "b"}), "schema.unknown-field", "'labelz' was unexpected"),
}


def _edited(source: Path, tmp_path: Path, edit: Callable[[Docs], None]) -> Path:
    folder = tmp_path / "manifests"
    shutil.copytree(source, folder)
    docs = {p.name: yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))}
    edit(docs)
    for name, doc in docs.items():
        (folder / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


@pytest.mark.parametrize("case", sorted(TEKTON_CASES))
def test_each_rule_has_a_failing_fixture(cli: Cli, tmp_path: Path, case: str) -> None:
    edit, rule, words = TEKTON_CASES[case]
    folder = _edited(TEKTON, tmp_path, edit)
    result = cli("pipeline", "validate", folder)
    assert result.code == 1, result.out
    lines = [line for line in result.out.splitlines() if f"ERROR [{rule}]" in line]
    assert lines and any(words in line for line in lines), result.out
    assert "INVALID" in result.out.splitlines()[-1]


K8S_CASES: dict[str, tuple[Callable[[Docs], None], str, str]] = {
    "job unknown field": (lambda d: _kind(d, "Job", "mlperf-run")["spec"]["template"]["spec"][
        "containers"][0].update(comand=["x"]), "schema.unknown-field", "'comand'"),
    "job type": (lambda d: _kind(d, "Job", "mlperf-run")["spec"].update(parallelism="two"),
                 "schema.type", "'two' is not of type 'integer'"),
    "pvc name": (lambda d: _kind(d, "PersistentVolumeClaim")["metadata"].update(
        name="Data!"), "names.invalid", "'Data!'"),
}


@pytest.mark.parametrize("case", sorted(K8S_CASES))
def test_kubernetes_validate_really_checks_core_kinds(cli: Cli, tmp_path: Path,
                                                      case: str) -> None:
    edit, rule, words = K8S_CASES[case]
    result = cli("pipeline", "validate", _edited(K8S, tmp_path, edit), "--json")
    assert result.code == 1
    found = json.loads(result.out)["findings"]
    assert any(f["rule"] == rule and words in f["message"] for f in found), found
    assert all(f["file"].endswith(".yaml") and f["where"] and f["fix"] for f in found)


def test_unreadable_yaml_and_usage_errors(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(K8S, folder)
    (folder / "99-broken.yaml").write_text("kind: Job\n  bad: [\n")
    (folder / "98-nokind.yaml").write_text("foo: bar\n")
    result = cli("pipeline", "validate", folder)
    assert result.code == 1
    assert "ERROR [yaml.invalid]" in result.out and "ERROR [object.kind-missing]" in result.out
    assert cli("pipeline", "validate", tmp_path / "absent").code == 2
    (tmp_path / "empty").mkdir()
    assert cli("pipeline", "validate", tmp_path / "empty").code == 2
    assert cli("pipeline", "validate", K8S, "--kubernetes-version", "1.99").code == 2


def test_a_list_document_and_a_cluster_crd_folder(cli: Cli, tmp_path: Path) -> None:
    """Several objects in one file (a List, as `kubectl get -o yaml` writes), and --crds."""
    docs = [yaml.safe_load(p.read_text()) for p in sorted(TEKTON.glob("*.yaml"))]
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "all.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "List", "items": docs}))
    from mlperf_pilot.pipelines.schema import BUNDLED_CRDS

    crds = tmp_path / "crds"
    crds.mkdir()
    for name in ("300-task.yaml", "300-pipeline.yaml", "300-pipelinerun.yaml"):
        shutil.copy(BUNDLED_CRDS / name, crds / name)
    ok = cli("pipeline", "validate", tmp_path / "m", "--crds", crds)
    assert ok.code == 0 and "7 objects in 1 files" in ok.out
    (crds / "300-task.yaml").unlink()  # no Task schema: the Tasks are not checked
    missing = cli("pipeline", "validate", tmp_path / "m", "--crds", crds)
    assert missing.code == 1 and "tekton.dev/v1 has no kind 'Task'" in missing.out


def test_structural_schema_conversion() -> None:
    converted = json_schema({
        "type": "object", "properties": {
            "a": {"x-kubernetes-int-or-string": True},
            "b": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                  "properties": {"c": {"type": "string"}}},
            "d": {"type": "string", "nullable": True}}})
    assert converted["additionalProperties"] is False
    assert converted["properties"]["a"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert "additionalProperties" not in converted["properties"]["b"]
    assert converted["properties"]["d"]["type"] == ["string", "null"]


@pytest.mark.parametrize(("rest", "name"), [("x", "x"), ("x[*]", "x"), ("x[0]", "x"),
                                            ('["a.b"]', "a.b"), ("obj.key", "obj")])
def test_param_reference_forms(rest: str, name: str) -> None:
    assert param_name(rest) == name


def test_goldens_are_clean() -> None:
    for folder in sorted(GOLDEN.iterdir()):
        assert validate_folder(folder).findings == [], folder.name


def test_embedded_task_specs_see_the_pipelines_params(tmp_path: Path) -> None:
    def embed(docs: Docs, word: str) -> None:
        _kind(docs, "Pipeline")["spec"]["tasks"].append({
            "name": "hello", "runAfter": ["run"],
            "params": [{"name": "own", "value": "x"}],
            "taskSpec": {"params": [{"name": "own", "type": "string"}],
                         "steps": [{"name": "say", "image": "$(params.image)",
                                    "args": ["$(params.own)", word]}]}})

    ok = validate_folder(_edited(TEKTON, tmp_path / "a", lambda d: embed(d, "plain")))
    assert ok.findings == []
    bad = validate_folder(_edited(TEKTON, tmp_path / "b", lambda d: embed(d, "$(params.nope)")))
    assert [(f.rule, f.result) for f in bad.findings] == [
        ("params.undeclared", "Pipeline/mlperf spec.tasks[4].taskSpec.steps[0].args[1]")]
