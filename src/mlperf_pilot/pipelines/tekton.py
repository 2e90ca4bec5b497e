"""A Tekton ``tekton.dev/v1`` pipeline of a RunSpec (pure: RenderInput -> manifests).

Tasks ``<name>-build`` (buildah: the one privileged step), ``<name>-assets`` (``mlperf-pilot
cache fetch``: model and dataset into the ``assets`` workspace, verified, skipping what is
cached), ``<name>-run`` (one LoadGen run per scenario; Tekton results ``metric`` and
``verdict``) and ``<name>-submission`` (generate, check, pack; in ``finally``); a Pipeline
that clones the source with the Tekton catalog's ``git-clone`` (hub resolver), builds,
fetches, then fans the run out over the scenarios with a ``matrix``; a PipelineRun binding
the workspaces (a ``volumeClaimTemplate`` or a named claim; the registry Secret by name).
"""

from __future__ import annotations

from typing import Any

from mlperf_pilot.pipelines.commands import StepPaths, fetch_argv, run_argv
from mlperf_pilot.pipelines.options import BUILDAH_IMAGE, CONTAINERFILE, RenderInput
from mlperf_pilot.pipelines.steps import (
    UNPRIVILEGED,
    light_resources,
    metadata,
    resources,
    service_account,
    step_results_argv,
    submission_argvs,
)

API = "tekton.dev/v1"
GIT_CLONE_VERSION = "0.9"


def _task(render: RenderInput, suffix: str, spec: dict[str, Any]) -> dict[str, Any]:
    name = f"{render.options.name}-{suffix}"
    return {"apiVersion": API, "kind": "Task", "metadata": metadata(render, name, suffix),
            "spec": spec}


def _param(name: str, description: str, default: Any = None, kind: str = "string"
           ) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "type": kind, "description": description}
    if default is not None:
        param["default"] = default
    return param


def _argv_step(name: str, image: str, argv: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "command": argv[:1], "args": argv[1:], **extra}


_BUILD_SCRIPT = """#!/bin/sh
set -eu
set -- --build-arg "CUDA=$CUDA"
if [ -n "$BASE_IMAGE" ]; then set -- "$@" --build-arg "BASE_IMAGE=$BASE_IMAGE"; fi
auth=""
if [ "$DOCKERCONFIG_BOUND" = "true" ]; then auth="$DOCKERCONFIG_PATH/.dockerconfigjson"; fi
buildah bud --storage-driver=overlay "$@" -f "$CONTAINERFILE" -t "$IMAGE" "$CONTEXT"
if [ -n "$auth" ]; then
  buildah push --storage-driver=overlay --authfile "$auth" --digestfile /tmp/digest "$IMAGE"
else
  buildah push --storage-driver=overlay --digestfile /tmp/digest "$IMAGE"
fi
printf '%s' "$(cat /tmp/digest)" > "$RESULT_DIGEST"
printf '%s' "$IMAGE" > "$RESULT_URL"
"""


def build_task(render: RenderInput) -> dict[str, Any]:
    """buildah bud + push of the repository's Containerfile; privileged (buildah needs it)."""
    env = [{"name": name, "value": value} for name, value in (
        ("IMAGE", "$(params.IMAGE)"), ("CONTAINERFILE", "$(params.CONTAINERFILE)"),
        ("CONTEXT", "$(params.CONTEXT)"), ("BASE_IMAGE", "$(params.BASE_IMAGE)"),
        ("CUDA", "$(params.CUDA)"), ("DOCKERCONFIG_BOUND", "$(workspaces.dockerconfig.bound)"),
        ("DOCKERCONFIG_PATH", "$(workspaces.dockerconfig.path)"),
        ("RESULT_DIGEST", "$(results.IMAGE_DIGEST.path)"),
        ("RESULT_URL", "$(results.IMAGE_URL.path)"))]
    return _task(render, "build", {
        "description": "Build the mlperf-pilot image from the repository's Containerfile "
                       "with buildah and push it (the only privileged step).",
        "params": [
            _param("IMAGE", "The image reference to build and push."),
            _param("CONTAINERFILE", "The Containerfile, relative to CONTEXT.", CONTAINERFILE),
            _param("CONTEXT", "The build context in the source workspace.", "."),
            _param("BASE_IMAGE", "Build argument BASE_IMAGE (empty: the Containerfile's "
                                 "default).", ""),
            _param("CUDA", "Build argument CUDA: 1 for the CUDA variant, 0 for CPU.", "0"),
            _param("BUILDER_IMAGE", "The buildah image.", BUILDAH_IMAGE),
        ],
        "workspaces": [
            {"name": "source", "description": "The repository checkout."},
            {"name": "dockerconfig", "optional": True,
             "description": "A registry Secret's .dockerconfigjson (bound by name)."},
        ],
        "results": [
            {"name": "IMAGE_URL", "type": "string", "description": "The image pushed."},
            {"name": "IMAGE_DIGEST", "type": "string", "description": "Its digest."},
        ],
        "steps": [{
            "name": "build-and-push", "image": "$(params.BUILDER_IMAGE)",
            "workingDir": "$(workspaces.source.path)", "env": env, "script": _BUILD_SCRIPT,
            "securityContext": {"privileged": True},
            "computeResources": light_resources(),
            "volumeMounts": [{"name": "containers", "mountPath": "/var/lib/containers"}],
        }],
        "volumes": [{"name": "containers", "emptyDir": {}}],
    })


def _paths() -> StepPaths:
    return StepPaths(results_dir="$(workspaces.results.path)",
                     cache_dir="$(workspaces.assets.path)")


def assets_task(render: RenderInput) -> dict[str, Any]:
    argv = fetch_argv(render.spec, backend=render.backend, paths=_paths())
    return _task(render, "assets", {
        "description": "Download and verify the model and dataset into the assets "
                       "workspace (what is cached already is kept).",
        "params": [_param("image", "The mlperf-pilot image.")],
        "workspaces": [{"name": "assets", "description": "The asset cache."}],
        "steps": [_argv_step("fetch", "$(params.image)", argv,
                             computeResources=light_resources(),
                             securityContext=UNPRIVILEGED)],
    })


def run_task(render: RenderInput) -> dict[str, Any]:
    paths = _paths()
    argv = run_argv(render.spec, backend=render.backend, scenario="$(params.scenario)",
                    paths=paths)
    report = step_results_argv(paths.results_dir, "$(params.scenario)",
                               metric_file="$(results.metric.path)",
                               verdict_file="$(results.verdict.path)")
    return _task(render, "run", {
        "description": "One LoadGen run (accuracy and performance) of one scenario; the "
                       "logs and records go to the results workspace.",
        "params": [_param("image", "The mlperf-pilot image."),
                   _param("scenario", "The LoadGen scenario of this run.")],
        "workspaces": [{"name": "assets", "description": "The asset cache (filled by the "
                                                         "assets task)."},
                       {"name": "results", "description": "The results folder."}],
        "results": [
            {"name": "metric", "type": "string",
             "description": "The headline metric, e.g. '812.5 samples/s'."},
            {"name": "verdict", "type": "string", "description": "VALID, INVALID or FAILED."},
        ],
        "steps": [
            # the verdict step reports an INVALID run (and fails the task) after it
            _argv_step("run", "$(params.image)", argv, onError="continue",
                       computeResources=resources(render, gpu=True),
                       securityContext=UNPRIVILEGED),
            _argv_step("verdict", "$(params.image)", report,
                       computeResources=light_resources(), securityContext=UNPRIVILEGED),
        ],
    })


def submission_task(render: RenderInput) -> dict[str, Any]:
    generate, check, pack = submission_argvs(render, "$(workspaces.results.path)")
    steps = [
        _argv_step("generate", "$(params.image)", generate),
        # the check's findings are in its log; pack checks again and refuses a failing tree
        _argv_step("check", "$(params.image)", check, onError="continue"),
        _argv_step("pack", "$(params.image)", pack),
    ]
    for step in steps:
        step["computeResources"] = light_resources()
        step["securityContext"] = UNPRIVILEGED
    return _task(render, "submission", {
        "description": "Build, check and pack the submission tree of the results.",
        "params": [_param("image", "The mlperf-pilot image.")],
        "workspaces": [{"name": "results", "description": "The results folder."}],
        "steps": steps,
    })


def pipeline(render: RenderInput) -> dict[str, Any]:
    name = render.options.name
    # the image just built, pinned by its digest (a tag may move while the pipeline runs)
    image_url = "$(tasks.build.results.IMAGE_URL)@$(tasks.build.results.IMAGE_DIGEST)"
    data = [{"name": "assets", "workspace": "data", "subPath": "assets"},
            {"name": "results", "workspace": "data", "subPath": "results"}]
    tasks = [
        {"name": "fetch-source",
         "taskRef": {"resolver": "hub", "params": [
             {"name": "catalog", "value": "tekton-catalog-tasks"},
             {"name": "kind", "value": "task"}, {"name": "name", "value": "git-clone"},
             {"name": "version", "value": GIT_CLONE_VERSION}]},
         "params": [{"name": "url", "value": "$(params.git-url)"},
                    {"name": "revision", "value": "$(params.git-revision)"}],
         "workspaces": [{"name": "output", "workspace": "source"}]},
        {"name": "build", "taskRef": {"name": f"{name}-build"}, "runAfter": ["fetch-source"],
         "params": [{"name": "IMAGE", "value": "$(params.image)"},
                    {"name": "BASE_IMAGE", "value": "$(params.base-image)"},
                    {"name": "CUDA", "value": "1" if render.cuda else "0"}],
         "workspaces": [{"name": "source", "workspace": "source"},
                        {"name": "dockerconfig", "workspace": "dockerconfig"}]},
        {"name": "assets", "taskRef": {"name": f"{name}-assets"}, "runAfter": ["build"],
         "params": [{"name": "image", "value": image_url}],
         "workspaces": data[:1]},
        {"name": "run", "taskRef": {"name": f"{name}-run"}, "runAfter": ["assets"],
         "params": [{"name": "image", "value": image_url}],
         "matrix": {"params": [{"name": "scenario", "value": ["$(params.scenarios[*])"]}]},
         "workspaces": data},
    ]
    final = [{"name": "submission", "taskRef": {"name": f"{name}-submission"},
              "params": [{"name": "image", "value": "$(params.image)"}],
              "workspaces": data[1:]}]
    return {
        "apiVersion": API, "kind": "Pipeline", "metadata": metadata(render, name, "pipeline"),
        "spec": {
            "description": f"MLPerf Inference {render.spec.model} on {render.system}: "
                           "build the image, fetch the assets, one LoadGen run per "
                           "scenario, then the submission.",
            "params": [
                _param("image", "The image to build and run.", render.image),
                _param("scenarios", "The LoadGen scenarios (one run each).",
                       render.scenarios, "array"),
                _param("git-url", "The mlperf-pilot repository (its Containerfile at the "
                                  "root)."),
                _param("git-revision", "The revision to build.", render.options.git_revision),
                _param("base-image", "The Containerfile's BASE_IMAGE (empty: its default).",
                       ""),
            ],
            "workspaces": [
                {"name": "source", "description": "Scratch space for the checkout."},
                {"name": "data", "description": "Assets and results (keep it: a claim)."},
                {"name": "dockerconfig", "optional": True,
                 "description": "The registry Secret (.dockerconfigjson)."},
            ],
            "tasks": tasks,
            "finally": final,
            "results": [
                {"name": "verdicts", "type": "array", "description": "Each scenario's verdict.",
                 "value": ["$(tasks.run.results.verdict[*])"]},
                {"name": "metrics", "type": "array", "description": "Each scenario's metric.",
                 "value": ["$(tasks.run.results.metric[*])"]},
            ],
        },
    }


def pipeline_run(render: RenderInput) -> dict[str, Any]:
    opts = render.options
    if opts.pvc:
        data: dict[str, Any] = {"name": "data", "persistentVolumeClaim": {"claimName": opts.pvc}}
    else:
        claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": opts.size}}}
        if opts.storage_class:
            claim["storageClassName"] = opts.storage_class
        data = {"name": "data", "volumeClaimTemplate": {"spec": claim}}
    workspaces = [
        {"name": "source", "volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
            **({"storageClassName": opts.storage_class} if opts.storage_class else {})}}},
        data,
    ]
    if opts.registry_secret:
        workspaces.append({"name": "dockerconfig", "secret": {"secretName":
                                                              opts.registry_secret}})
    return {
        "apiVersion": API, "kind": "PipelineRun",
        "metadata": metadata(render, f"{opts.name}-{render.spec.model}-{render.system}"[:63]
                             .rstrip("-"), "pipeline-run"),
        "spec": {
            "pipelineRef": {"name": opts.name},
            "params": [{"name": "image", "value": render.image},
                       {"name": "scenarios", "value": render.scenarios},
                       {"name": "git-url", "value": opts.git_url or ""},
                       {"name": "git-revision", "value": opts.git_revision}],
            "workspaces": workspaces,
            "taskRunTemplate": {"serviceAccountName": opts.service_account,
                                **({"podTemplate": {"securityContext": opts.pod_security}}
                                   if opts.pod_security else {})},
            "timeouts": {"pipeline": "12h0m0s"},
        },
    }


def render_tekton(render: RenderInput) -> list[dict[str, Any]]:
    """Every object, in the order ``kubectl apply`` should create them."""
    return [service_account(render), build_task(render), assets_task(render),
            run_task(render), submission_task(render), pipeline(render),
            pipeline_run(render)]


__all__ = ["API", "render_tekton"]
