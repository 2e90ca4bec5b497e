"""Pipelines: the benchmark as Tekton v1 or Kubernetes manifests, rendered from a RunSpec,
validated offline, and their results collected back.

- :mod:`.commands`: the ``mlperf-pilot`` command lines of the steps, from a RunSpec
- :mod:`.options`, :mod:`.steps`: render options, the pieces both targets share
- :mod:`.tekton`, :mod:`.k8s`: pure renderers, RenderInput -> list of manifest dicts
- :mod:`.write`: one YAML file per object
- :mod:`.validate` (:mod:`.schema`, :mod:`.semantic`): offline checks, as findings
- :mod:`.shipping`, :mod:`.collect`: a run step's verdict and log archive; collecting them
"""

from __future__ import annotations

from typing import Any, Literal

Target = Literal["tekton", "k8s"]
TARGETS: tuple[Target, ...] = ("tekton", "k8s")


def render(target: Target, render_input: Any) -> list[dict[str, Any]]:
    """The manifests of ``target`` for a :class:`~.options.RenderInput`."""
    if target == "tekton":
        from mlperf_pilot.pipelines.tekton import render_tekton

        return render_tekton(render_input)
    from mlperf_pilot.pipelines.k8s import render_k8s

    return render_k8s(render_input)


__all__ = ["TARGETS", "Target", "render"]
