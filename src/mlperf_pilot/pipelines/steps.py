"""The pieces both renderers share: labels, resources, security contexts, the
submission commands and the ServiceAccount."""

from __future__ import annotations

import shlex
from typing import Any

from mlperf_pilot.pipelines.options import RenderInput

PART_OF = "mlperf-pilot"
# the only privileged container of either target is the image build (buildah)
UNPRIVILEGED: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def labels(render: RenderInput, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/instance": render.options.name,
            "app.kubernetes.io/component": component, "mlperf-pilot/model": render.spec.model}


def metadata(render: RenderInput, name: str, component: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels(render, component)}
    if render.options.namespace:
        meta["namespace"] = render.options.namespace
    return meta


def resources(render: RenderInput, *, gpu: bool) -> dict[str, Any]:
    """Requests = limits (Guaranteed QoS: a benchmark shares no CPU it was promised);
    ``nvidia.com/gpu`` for a CUDA run."""
    amounts: dict[str, Any] = {"cpu": render.options.cpu, "memory": render.options.memory}
    if gpu and render.cuda:
        amounts["nvidia.com/gpu"] = str(render.options.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def light_resources() -> dict[str, Any]:
    """The asset and submission steps: downloads, preprocessing, file copies."""
    amounts = {"cpu": "2", "memory": "4Gi"}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def submission_argvs(render: RenderInput, results_dir: str) -> list[list[str]]:
    """generate, check, pack: the submission tree of the results folder."""
    out = f"{results_dir}/submission"
    round_ = render.spec.round
    return [
        ["mlperf-pilot", "submission", "generate", "--division", render.options.division,
         "--submitter", render.options.submitter, "--round", round_, "--results-dir",
         results_dir, "--out", out, "--no-check", "--force"],
        ["mlperf-pilot", "submission", "check", out, "--round", round_],
        ["mlperf-pilot", "submission", "pack", out, "--round", round_],
    ]


def step_results_argv(results_dir: str, scenario: str, *, metric_file: str | None = None,
                      verdict_file: str | None = None) -> list[str]:
    argv = ["mlperf-pilot", "pipeline", "step-results", "--results-dir", results_dir,
            "--scenario", scenario]
    if metric_file:
        argv += ["--metric-file", metric_file]
    if verdict_file:
        argv += ["--verdict-file", verdict_file]
    return argv


def shell_line(argv: list[str], raw: frozenset[str] = frozenset()) -> str:
    """A command line for ``sh``: every word quoted except those in ``raw`` (a shell
    variable such as ``"$SCENARIO"``, left to expand)."""
    return " ".join(word if word in raw else shlex.quote(word) for word in argv)


def service_account(render: RenderInput) -> dict[str, Any]:
    """The ServiceAccount the pods run as; the registry Secret by name only."""
    account: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": metadata(render, render.options.service_account, "service-account"),
    }
    secret = render.options.registry_secret
    if secret:
        account["secrets"] = [{"name": secret}]
        account["imagePullSecrets"] = [{"name": secret}]
    return account


__all__ = ["PART_OF", "UNPRIVILEGED", "labels", "light_resources", "metadata", "resources",
           "service_account", "shell_line", "step_results_argv", "submission_argvs"]
