"""The same pipeline as plain Kubernetes objects (pure: RenderInput -> manifests).

A PersistentVolumeClaim (assets and results; or a claim given by name), an asset Job
(``mlperf-pilot cache fetch``), an Indexed Job with one index per scenario (the run; one
index at a time, so no two benchmarks share the node; every index runs once, however the
others end) and a collector Job (generate, check and pack the submission once every
scenario is marked finished). ``kubectl apply -f DIR`` creates them all: each run pod fetches
the assets first (the cache skips what is there, so it waits on the asset Job's work
rather than redoing it), and the collector waits for every index's mark.
"""

from __future__ import annotations

from typing import Any

from mlperf_pilot.pipelines.commands import StepPaths, fetch_argv, run_argv
from mlperf_pilot.pipelines.options import RenderInput
from mlperf_pilot.pipelines.steps import (
    UNPRIVILEGED,
    labels,
    light_resources,
    metadata,
    resources,
    service_account,
    shell_line,
    step_results_argv,
    submission_argvs,
)

MOUNT = "/data"
PATHS = StepPaths(results_dir=f"{MOUNT}/results", cache_dir=f"{MOUNT}/assets")
_SCENARIO = '"$SCENARIO"'
FINISHED = f"{PATHS.results_dir}/.finished"
COLLECT_DEADLINE_S = 48 * 3600


def claim_name(render: RenderInput) -> str:
    return render.options.pvc or f"{render.options.name}-data"


def pvc(render: RenderInput) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": render.options.size}}}
    if render.options.storage_class:
        spec["storageClassName"] = render.options.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": metadata(render, claim_name(render), "data"), "spec": spec}


def _container(name: str, image: str, command: list[str], res: dict[str, Any]
               ) -> dict[str, Any]:
    return {"name": name, "image": image, "command": command, "resources": res,
            "securityContext": UNPRIVILEGED,
            "volumeMounts": [{"name": "data", "mountPath": MOUNT}]}


def _pod(render: RenderInput, component: str, containers: list[dict[str, Any]],
         init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": render.options.service_account,
        "restartPolicy": "Never",
        "containers": containers,
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName":
                                                               claim_name(render)}}],
    }
    if render.options.pod_security:
        spec["securityContext"] = render.options.pod_security
    if init:
        spec["initContainers"] = init
    if render.options.registry_secret:
        spec["imagePullSecrets"] = [{"name": render.options.registry_secret}]
    return {"metadata": {"labels": labels(render, component)}, "spec": spec}


def _job(render: RenderInput, suffix: str, template: dict[str, Any], **spec: Any
         ) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": metadata(render, f"{render.options.name}-{suffix}", suffix),
            "spec": {**spec, "template": template}}


def _fetch(render: RenderInput) -> dict[str, Any]:
    return _container("fetch", render.image,
                      fetch_argv(render.spec, backend=render.backend, paths=PATHS),
                      light_resources())


def assets_job(render: RenderInput) -> dict[str, Any]:
    return _job(render, "assets", _pod(render, "assets", [_fetch(render)]), backoffLimit=2)


def run_script(render: RenderInput) -> str:
    """The index's scenario, its ``mlperf-pilot run``, its verdict, then the scenario's
    mark in ``.finished/`` (the collector waits for the marks; the exit code is the run's,
    1 for INVALID)."""
    run = run_argv(render.spec, backend=render.backend, scenario=_SCENARIO, paths=PATHS)
    verdict = step_results_argv(PATHS.results_dir, _SCENARIO)
    raw = frozenset({_SCENARIO})
    return "\n".join([
        "set -eu",
        f"set -- {' '.join(render.scenarios)}",
        'shift "$JOB_COMPLETION_INDEX"',
        'SCENARIO="$1"',
        "status=0",
        f"{shell_line(run, raw)} || status=$?",
        f"{shell_line(verdict, raw)} || status=$?",
        f"mkdir -p {FINISHED}",
        f'touch {FINISHED}/"$SCENARIO"',
        'exit "$status"',
    ]) + "\n"


def run_job(render: RenderInput) -> dict[str, Any]:
    count = len(render.scenarios)
    run = _container("run", render.image, ["/bin/sh", "-c", run_script(render)],
                     resources(render, gpu=True))
    return _job(render, "run", _pod(render, "run", [run], init=[_fetch(render)]),
                completionMode="Indexed", completions=count, parallelism=1,
                backoffLimitPerIndex=0, maxFailedIndexes=count)


def collect_script(render: RenderInput) -> str:
    """Wait until every scenario is marked finished after this pod started (a mark of an
    earlier run on a kept claim is older), then build, check and pack the submission."""
    generate, check, pack = submission_argvs(render, PATHS.results_dir)
    return "\n".join([
        "set -eu",
        "touch /tmp/started",
        f"for scenario in {' '.join(render.scenarios)}; do",
        f'  until [ {FINISHED}/"$scenario" -nt /tmp/started ]; do sleep 30; done',
        "done",
        shell_line(generate),
        f"{shell_line(check)} || true",
        shell_line(pack),
    ]) + "\n"


def _beside_the_runs(render: RenderInput) -> dict[str, Any]:
    """The collector waits for hours with the claim mounted: on the run pods' node, so a
    ReadWriteOnce volume never has to be attached to two nodes at once."""
    match = {"app.kubernetes.io/instance": render.options.name,
             "app.kubernetes.io/component": "run"}
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": match}, "topologyKey": "kubernetes.io/hostname"}]}}


def collect_job(render: RenderInput) -> dict[str, Any]:
    collect = _container("collect", render.image, ["/bin/sh", "-c", collect_script(render)],
                         light_resources())
    template = _pod(render, "collect", [collect])
    template["spec"]["affinity"] = _beside_the_runs(render)
    # no retry: a new pod would wait for marks newer than itself
    return _job(render, "collect", template, backoffLimit=0,
                activeDeadlineSeconds=COLLECT_DEADLINE_S)


def render_k8s(render: RenderInput) -> list[dict[str, Any]]:
    """Every object, in the order ``kubectl apply`` should create them."""
    objects = [service_account(render)]
    if not render.options.pvc:
        objects.append(pvc(render))
    return [*objects, assets_job(render), run_job(render), collect_job(render)]


__all__ = ["render_k8s"]
