"""The checks no schema does (Tekton's admission webhook and controller would, on a
cluster): references between the objects of a folder.

- ``ref.task-missing`` / ``ref.pipeline-missing`` / ``ref.resolver``: a ``taskRef`` names a
  Task of the folder, or is a resolver reference (hub, git, bundles, cluster, http);
- ``params.undeclared``: every ``$(params.x)`` is declared where it is used; a pipeline
  task passes only the params its Task declares (``params.unknown``) and every one it
  requires (``params.missing``); the same for a PipelineRun and its Pipeline;
- ``workspaces.undeclared``: every ``$(workspaces.w.*)`` is declared; ``workspaces.unbound``:
  every required workspace is bound PipelineRun -> Pipeline -> Task, and nothing is bound
  that is not declared;
- ``results.undeclared``: every ``$(results.r.path)`` and ``$(tasks.t.results.r)`` names a
  declared result of an existing task; ``context.unknown``: ``$(context...)`` is a known one;
- ``runafter.missing`` / ``runafter.cycle``: ``runAfter`` names tasks of the pipeline, and
  the graph (with result references) has no cycle;
- ``matrix.undeclared`` / ``matrix.not-array`` / ``matrix.too-many``: matrix params are
  declared by the Task, are arrays, and fan out to at most 256 runs;
- ``names.invalid``: object names are DNS-1123 labels of at most 63 characters;
- ``claims.missing`` (warning): a Job mounts a claim the folder does not define.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlperf_pilot.vocab import Severity

RESOLVERS = frozenset({"hub", "git", "bundles", "cluster", "http"})
MATRIX_LIMIT = 256  # Tekton's default default-max-matrix-combinations-count
CONTEXT_VARIABLES = frozenset({
    "pipelineRun.name", "pipelineRun.namespace", "pipelineRun.uid", "pipeline.name",
    "pipelineTask.retries", "taskRun.name", "taskRun.namespace", "taskRun.uid", "task.name",
    "task.retry-count"})
_VARIABLE = re.compile(r"\$\((params|workspaces|tasks|results|context)"
                       r"(?:\.|(?=\[))([^)]*)\)")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PARAM = re.compile(r"^(?:\[['\"]([^'\"]+)['\"]\]|([A-Za-z0-9_.-]+?))(?:\[(?:\*|\d+)\])?"
                    r"(?:\.([A-Za-z0-9_-]+))?$")


@dataclass(frozen=True)
class Manifest:
    file: str
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name", ""))

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.obj.get("spec")
        return spec if isinstance(spec, Mapping) else {}


@dataclass(frozen=True)
class Problem:
    manifest: Manifest
    where: str
    severity: Severity
    rule: str
    message: str
    fix: str


def _strings(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string value with its path; descriptions are prose, not references."""
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if key != "description":
                yield from _strings(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{where}[{index}]")


def variables(node: Any, where: str) -> Iterator[tuple[str, str, str]]:
    """(path, root, rest) of each ``$(root.rest)`` in ``node``."""
    for path, text in _strings(node, where):
        for match in _VARIABLE.finditer(text):
            yield path, match.group(1), match.group(2)


def param_name(rest: str) -> str:
    """``x``, ``x[*]``, ``x[0]``, ``["x.y"]``, ``x.key`` (an object param's key) -> the name."""
    match = _PARAM.match(rest)
    if match is None:
        return rest
    return match.group(1) or match.group(2) or rest


def _names(items: Any) -> list[str]:
    return [str(item.get("name")) for item in items or [] if isinstance(item, Mapping)]


class Checker:
    """The checks over one folder's manifests."""

    def __init__(self, manifests: Sequence[Manifest]) -> None:
        self.manifests = list(manifests)
        self.tasks = {m.name: m for m in self.manifests if m.kind == "Task"}
        self.pipelines = {m.name: m for m in self.manifests if m.kind == "Pipeline"}
        self.claims = {m.name for m in self.manifests if m.kind == "PersistentVolumeClaim"}
        self.problems: list[Problem] = []

    def error(self, manifest: Manifest, where: str, rule: str, message: str, fix: str) -> None:
        self.problems.append(Problem(manifest, where, Severity.ERROR, rule, message, fix))

    def warning(self, manifest: Manifest, where: str, rule: str, message: str, fix: str
                ) -> None:
        self.problems.append(Problem(manifest, where, Severity.WARNING, rule, message, fix))

    def run(self) -> list[Problem]:
        for manifest in self.manifests:
            self._name(manifest)
            if manifest.kind == "Task":
                self._task(manifest, manifest.spec, "spec")
            elif manifest.kind == "Pipeline":
                self._pipeline(manifest, manifest.spec, "spec")
            elif manifest.kind == "PipelineRun":
                self._pipeline_run(manifest)
            elif manifest.kind == "Job":
                self._job(manifest)
        return self.problems

    def _name(self, manifest: Manifest) -> None:
        name = manifest.name
        if not name and (manifest.obj.get("metadata") or {}).get("generateName"):
            return
        if len(name) > 63 or not _NAME.match(name):
            self.error(manifest, "metadata.name", "names.invalid",
                       f"name {name!r} is not a DNS-1123 label of at most 63 characters",
                       "use lower-case letters, digits and '-', starting and ending "
                       "alphanumeric")

    # ---------------------------------------------------------------------------- Task

    def _task(self, manifest: Manifest, spec: Mapping[str, Any], where: str,
              inherited: frozenset[str] = frozenset()) -> None:
        """``inherited``: an embedded taskSpec also sees its pipeline's params (Tekton
        propagates them)."""
        params = set(_names(spec.get("params"))) | inherited
        workspaces = set(_names(spec.get("workspaces")))
        results = set(_names(spec.get("results")))
        for path, root, rest in variables(spec, where):
            if root == "params" and param_name(rest) not in params:
                self.error(manifest, path, "params.undeclared",
                           f"$(params.{rest}) is not a param of the task",
                           f"declare {param_name(rest)!r} under {where}.params, or fix the "
                           f"name (declared: {_listed(params)})")
            elif root == "workspaces" and rest.split(".")[0] not in workspaces:
                self.error(manifest, path, "workspaces.undeclared",
                           f"$(workspaces.{rest}) names no workspace of the task",
                           f"declare it under {where}.workspaces (declared: "
                           f"{_listed(workspaces)})")
            elif root == "results" and rest.split(".")[0] not in results:
                self.error(manifest, path, "results.undeclared",
                           f"$(results.{rest}) names no result of the task",
                           f"declare it under {where}.results (declared: {_listed(results)})")
            elif root == "context":
                self._context(manifest, path, rest)
            elif root == "tasks":
                self.error(manifest, path, "results.undeclared",
                           f"$(tasks.{rest}) in a Task: only a Pipeline can read other "
                           "tasks' results", "pass the value in as a param")

    def _context(self, manifest: Manifest, path: str, rest: str) -> None:
        if rest not in CONTEXT_VARIABLES:
            self.error(manifest, path, "context.unknown", f"$(context.{rest}) is no "
                       "Tekton context variable", f"use one of {_listed(CONTEXT_VARIABLES)}")

    # ------------------------------------------------------------------------ Pipeline

    def _pipeline(self, manifest: Manifest, spec: Mapping[str, Any], where: str) -> None:
        params = set(_names(spec.get("params")))
        workspaces = {str(w.get("name")): w for w in spec.get("workspaces") or []
                      if isinstance(w, Mapping)}
        tasks = [t for t in spec.get("tasks") or [] if isinstance(t, Mapping)]
        final = [t for t in spec.get("finally") or [] if isinstance(t, Mapping)]
        names = [str(t.get("name")) for t in tasks]
        every = set(names) | {str(t.get("name")) for t in final}
        for path, root, rest in variables(spec, where):
            if ".taskSpec" in path:
                continue  # an embedded Task's own references: checked as a Task
            if root == "params" and param_name(rest) not in params:
                self.error(manifest, path, "params.undeclared",
                           f"$(params.{rest}) is not a param of the pipeline",
                           f"declare {param_name(rest)!r} under {where}.params (declared: "
                           f"{_listed(params)})")
            elif root == "context":
                self._context(manifest, path, rest)
            elif root == "workspaces":
                self.error(manifest, path, "workspaces.undeclared",
                           f"$(workspaces.{rest}) in a Pipeline", "bind the workspace to the "
                           "task under its workspaces; use the path inside the Task")
            elif root == "tasks":
                self._task_result(manifest, path, rest, tasks, final)
        edges: dict[str, set[str]] = {name: set() for name in names}
        for group, items in (("tasks", tasks), ("finally", final)):
            for index, task in enumerate(items):
                at = f"{where}.{group}[{index}]"
                self._pipeline_task(manifest, task, at, set(workspaces), frozenset(params))
                after = task.get("runAfter") or []
                for name in after:
                    if name not in names:
                        self.error(manifest, f"{at}.runAfter", "runafter.missing",
                                   f"runAfter names {name!r}, no task of the pipeline",
                                   f"name one of: {', '.join(names)}")
                if group == "tasks":
                    refs = {rest.split(".")[0] for _, root, rest in variables(task, at)
                            if root == "tasks"}
                    edges[str(task.get("name"))] |= {n for n in [*after, *refs]
                                                     if n in edges}
        cycle = _cycle(edges)
        if cycle:
            self.error(manifest, f"{where}.tasks", "runafter.cycle",
                       f"the tasks wait on each other: {' -> '.join(cycle)}",
                       "remove one runAfter (or result reference) of the cycle")
        if len(every) != len(names) + len(final):
            self.error(manifest, f"{where}.tasks", "names.duplicate",
                       "two pipeline tasks have the same name", "give every task its own name")

    def _task_result(self, manifest: Manifest, path: str, rest: str,
                     tasks: list[Mapping[str, Any]], final: list[Mapping[str, Any]]) -> None:
        parts = rest.split(".")
        by_name = {str(t.get("name")): t for t in tasks}
        if parts[0] == "status" or (len(parts) == 2 and parts[1] in ("status", "reason")):
            if len(parts) == 2 and parts[0] not in by_name:
                self.error(manifest, path, "results.undeclared",
                           f"$(tasks.{rest}) names no task of the pipeline",
                           f"name one of: {', '.join(by_name)}")
            return
        if len(parts) < 3 or parts[1] != "results":
            self.error(manifest, path, "results.undeclared", f"$(tasks.{rest}) is not a "
                       "result reference", "write $(tasks.TASK.results.RESULT)")
            return
        task, result = parts[0], re.sub(r"\[.*\]$", "", parts[2])
        if task not in by_name:
            finals = {str(t.get("name")) for t in final}
            why = "a finally task's results cannot be read" if task in finals else \
                "no task of the pipeline"
            self.error(manifest, path, "results.undeclared",
                       f"$(tasks.{rest}) names task {task!r}: {why}",
                       f"name one of: {', '.join(by_name)}")
            return
        declared = self._task_results(by_name[task])
        if declared is not None and result not in declared:
            self.error(manifest, path, "results.undeclared",
                       f"task {task!r} has no result {result!r}",
                       f"use one of its results: {_listed(declared)}")

    def _task_spec(self, task: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The Task a pipeline task runs, when the folder has it (None: resolved later)."""
        if isinstance(task.get("taskSpec"), Mapping):
            return task["taskSpec"]
        ref = task.get("taskRef")
        if isinstance(ref, Mapping) and ref.get("name") in self.tasks:
            return self.tasks[str(ref["name"])].spec
        return None

    def _task_results(self, task: Mapping[str, Any]) -> set[str] | None:
        spec = self._task_spec(task)
        return None if spec is None else set(_names(spec.get("results")))

    def _pipeline_task(self, manifest: Manifest, task: Mapping[str, Any], at: str,
                       workspaces: set[str], pipeline_params: frozenset[str]) -> None:
        ref = task.get("taskRef")
        if isinstance(ref, Mapping) and not isinstance(task.get("taskSpec"), Mapping):
            if ref.get("resolver"):
                if ref["resolver"] not in RESOLVERS:
                    self.warning(manifest, f"{at}.taskRef.resolver", "ref.resolver",
                                 f"resolver {ref['resolver']!r} is not one of Tekton's",
                                 f"use one of {_listed(RESOLVERS)}, or make sure the cluster "
                                 "has it")
            elif ref.get("name") not in self.tasks:
                self.error(manifest, f"{at}.taskRef.name", "ref.task-missing",
                           f"task {ref.get('name')!r} is not defined in this folder",
                           f"add its Task, reference it through a resolver (hub, bundles, "
                           f"git), or use one of: {_listed(set(self.tasks))}")
        elif isinstance(task.get("taskSpec"), Mapping):
            self._task(manifest, task["taskSpec"], f"{at}.taskSpec", pipeline_params)
        spec = self._task_spec(task)
        given = {str(p.get("name")): p for p in task.get("params") or []
                 if isinstance(p, Mapping)}
        matrix = task.get("matrix") if isinstance(task.get("matrix"), Mapping) else {}
        fanned = {str(p.get("name")): p for p in matrix.get("params") or []
                  if isinstance(p, Mapping)}
        self._matrix(manifest, f"{at}.matrix", fanned, spec)
        bound = {str(w.get("name")): w for w in task.get("workspaces") or []
                 if isinstance(w, Mapping)}
        for index, binding in enumerate(bound.values()):
            target = binding.get("workspace")
            if target is not None and target not in workspaces:
                self.error(manifest, f"{at}.workspaces[{index}].workspace",
                           "workspaces.unbound",
                           f"workspace {target!r} is not a workspace of the pipeline",
                           f"declare it under the pipeline's workspaces (declared: "
                           f"{_listed(workspaces)})")
        if spec is None:
            return
        declared = {str(p.get("name")): p for p in spec.get("params") or []
                    if isinstance(p, Mapping)}
        for name in [*given, *fanned]:
            if name not in declared:
                self.error(manifest, f"{at}.params", "params.unknown",
                           f"param {name!r} is not a param of the task",
                           f"remove it or use one of: {_listed(set(declared))}")
        for name, param in declared.items():
            if "default" not in param and name not in given and name not in fanned:
                self.error(manifest, f"{at}.params", "params.missing",
                           f"the task requires param {name!r}",
                           f"pass it: params: [{{name: {name}, value: ...}}]")
        task_ws = {str(w.get("name")): w for w in spec.get("workspaces") or []
                   if isinstance(w, Mapping)}
        for name in bound:
            if name not in task_ws:
                self.error(manifest, f"{at}.workspaces", "workspaces.unbound",
                           f"workspace {name!r} is bound but the task declares no such "
                           "workspace", f"bind one of: {_listed(set(task_ws))}")
        for name, ws in task_ws.items():
            if not ws.get("optional") and name not in bound:
                self.error(manifest, f"{at}.workspaces", "workspaces.unbound",
                           f"the task's workspace {name!r} is not bound",
                           f"bind it: workspaces: [{{name: {name}, workspace: ...}}]")

    def _matrix(self, manifest: Manifest, at: str, fanned: Mapping[str, Any],
                spec: Mapping[str, Any] | None) -> None:
        declared = set(_names(spec.get("params"))) if spec is not None else None
        combinations = 1
        for name, param in fanned.items():
            value = param.get("value")
            if declared is not None and name not in declared:
                self.error(manifest, f"{at}.params", "matrix.undeclared",
                           f"matrix param {name!r} is not a param of the task",
                           f"fan out one of its params: {_listed(declared)}")
            if not isinstance(value, list):
                self.error(manifest, f"{at}.params", "matrix.not-array",
                           f"matrix param {name!r} is not an array",
                           "give a list of values, or [\"$(params.ARRAY[*])\"]")
            elif not any("[*]" in str(v) for v in value):
                combinations *= max(len(value), 1)
        if combinations > MATRIX_LIMIT:
            self.error(manifest, at, "matrix.too-many",
                       f"the matrix fans out to {combinations} runs (Tekton's default cap "
                       f"is {MATRIX_LIMIT})", "split the matrix, or raise "
                       "default-max-matrix-combinations-count in the cluster's config-defaults")

    # --------------------------------------------------------------------- PipelineRun

    def _pipeline_run(self, manifest: Manifest) -> None:
        spec = manifest.spec
        ref = spec.get("pipelineRef")
        pipeline: Mapping[str, Any] | None = None
        if isinstance(spec.get("pipelineSpec"), Mapping):
            pipeline = spec["pipelineSpec"]
            self._pipeline(manifest, pipeline, "spec.pipelineSpec")
        elif isinstance(ref, Mapping) and not ref.get("resolver"):
            if ref.get("name") in self.pipelines:
                pipeline = self.pipelines[str(ref["name"])].spec
            else:
                self.error(manifest, "spec.pipelineRef.name", "ref.pipeline-missing",
                           f"pipeline {ref.get('name')!r} is not defined in this folder",
                           f"add it, or use one of: {_listed(set(self.pipelines))}")
        for path, root, rest in variables(spec.get("params"), "spec.params"):
            if root == "context":
                self._context(manifest, path, rest)
        if pipeline is None:
            return
        declared = {str(p.get("name")): p for p in pipeline.get("params") or []
                    if isinstance(p, Mapping)}
        given = set(_names(spec.get("params")))
        for name in sorted(given - set(declared)):
            self.error(manifest, "spec.params", "params.unknown",
                       f"param {name!r} is not a param of the pipeline",
                       f"use one of: {_listed(set(declared))}")
        for name, param in declared.items():
            if "default" not in param and name not in given:
                self.error(manifest, "spec.params", "params.missing",
                           f"the pipeline requires param {name!r}", "give it under spec.params")
        pipeline_ws = {str(w.get("name")): w for w in pipeline.get("workspaces") or []
                       if isinstance(w, Mapping)}
        bound = set(_names(spec.get("workspaces")))
        for name in sorted(bound - set(pipeline_ws)):
            self.error(manifest, "spec.workspaces", "workspaces.unbound",
                       f"workspace {name!r} is bound but the pipeline declares no such "
                       "workspace", f"bind one of: {_listed(set(pipeline_ws))}")
        for name, ws in pipeline_ws.items():
            if not ws.get("optional") and name not in bound:
                self.error(manifest, "spec.workspaces", "workspaces.unbound",
                           f"the pipeline's workspace {name!r} is not bound",
                           "bind it to a volumeClaimTemplate, persistentVolumeClaim, "
                           "secret, configMap or emptyDir")

    # ----------------------------------------------------------------------------- Job

    def _job(self, manifest: Manifest) -> None:
        pod = ((manifest.spec.get("template") or {}).get("spec") or {})
        for index, volume in enumerate(pod.get("volumes") or []):
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and claim not in self.claims:
                self.warning(manifest, f"spec.template.spec.volumes[{index}]",
                             "claims.missing", f"claim {claim!r} is not defined in this "
                             "folder", "create it first, or render without --pvc")


def _cycle(edges: Mapping[str, set[str]]) -> list[str]:
    """A cycle of the graph (task -> the tasks it waits on), or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for after in sorted(edges.get(node, ())):
            if state.get(after) == 1:
                return [*stack[stack.index(after):], after]
            if after not in state:
                found = visit(after)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in edges:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def _listed(names: Any) -> str:
    return ", ".join(sorted(names)) or "none"


def check(manifests: Sequence[Manifest]) -> list[Problem]:
    return Checker(manifests).run()


__all__ = ["CONTEXT_VARIABLES", "Checker", "Manifest", "Problem", "check", "param_name",
           "variables"]
