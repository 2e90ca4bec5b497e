"""`pipeline`: the benchmark as Tekton v1 or Kubernetes manifests (render, validate,
collect), and the verdict step the rendered run steps call (step-results)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from mlperf_pilot.cli.app import State, cli, common_options, pass_state, stderr, stdout
from mlperf_pilot.cli.run_cmd import _flag_layer, _table_options, spec_layer_options
from mlperf_pilot.errors import EXIT_FAILED
from mlperf_pilot.pipelines.options import (
    DEFAULT_CPU,
    DEFAULT_FS_GROUP,
    DEFAULT_MEMORY,
    DEFAULT_SERVICE_ACCOUNT,
    DEFAULT_SIZE,
)
from mlperf_pilot.pipelines.schema import DEFAULT_KUBERNETES_VERSION


@cli.group()
def pipeline() -> None:
    """Tekton v1 pipelines and Kubernetes Jobs of a run: render, validate, collect."""


def spec_of(state: State, config_file: Path | None, set_items: Sequence[str],
            flags: dict[str, Any]) -> Any:
    """The RunSpec the same options give `mlperf-pilot run` (card < file < --set < flags)."""
    from mlperf_pilot.config import load_config_file, parse_set_option
    from mlperf_pilot.engine import resolve_spec

    layers: list[dict[str, Any]] = []
    if config_file is not None:
        layers.append(load_config_file(config_file))
    layers += [parse_set_option(item) for item in set_items]
    layers.append(_flag_layer(flags, state))
    return resolve_spec(layers)


def _fs_group(_ctx: click.Context, _param: click.Parameter, value: str) -> int | None:
    if value.strip().lower() == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a group id: give a number or none"
                                 ) from None


@pipeline.command("render")
@click.option("--target", type=click.Choice(["tekton", "k8s"]), default="tekton",
              show_default=True, help="Tekton v1 (Tasks, Pipeline, PipelineRun) or plain "
              "Kubernetes (PVC, asset Job, Indexed Job, collector Job).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="The folder to write the manifests to (one file per object).")
@click.option("--force", is_flag=True, help="Replace the YAML files --out holds.")
@click.option("--image", help="The image the steps run (Tekton: built and pushed there; "
              "default localhost/mlperf-pilot:<version>[-cuda]).")
@click.option("--storage-class", help="StorageClass of the claims (default: the "
              "cluster's).")
@click.option("--size", default=DEFAULT_SIZE, show_default=True,
              help="Size of the assets + results claim.")
@click.option("--pvc", help="Use this existing claim for assets and results (keeps them "
              "between runs) instead of a new one.")
@click.option("--namespace", help="metadata.namespace of every object (default: none, "
              "kubectl's current namespace).")
@click.option("--registry-secret", metavar="NAME", help="A dockerconfigjson Secret, by "
              "name: pushing (Tekton) and pulling the image.")
@click.option("--service-account", default=DEFAULT_SERVICE_ACCOUNT, show_default=True,
              help="The ServiceAccount the pods run as (rendered too).")
@click.option("--fs-group", default=str(DEFAULT_FS_GROUP), show_default=True,
              callback=_fs_group, metavar="GID|none",
              help="The pods' securityContext.fsGroup: the claim's group, so the image's "
              "user (10001) can write a fresh volume; none: the cluster assigns it "
              "(OpenShift's restricted SCC).")
@click.option("--cpu", default=DEFAULT_CPU, show_default=True,
              help="CPU request = limit of a run pod.")
@click.option("--memory", default=DEFAULT_MEMORY, show_default=True,
              help="Memory request = limit of a run pod.")
@click.option("--gpus", type=int, default=1, show_default=True,
              help="nvidia.com/gpu of a run pod (--device cuda).")
@click.option("--name", "prefix", default="mlperf", show_default=True,
              help="Prefix of the objects' names.")
@click.option("--git-url", help="Tekton (required there): the repository the image is "
              "built from (its Containerfile at the root).")
@click.option("--git-revision", default="main", show_default=True,
              help="Tekton: the revision to build.")
@click.option("--division", type=click.Choice(["closed", "open"]), default="open",
              show_default=True, help="The division of the submission the last step builds.")
@click.option("--submitter", default="my-org", show_default=True,
              help="The submitter of that submission.")
@_table_options("run")
@spec_layer_options
@common_options()
@pass_state
def pipeline_render(state: State, target: str, out: Path, force: bool, image: str | None,
                    storage_class: str | None, size: str, pvc: str | None,
                    namespace: str | None, registry_secret: str | None,
                    service_account: str, cpu: str, memory: str, gpus: int, prefix: str,
                    git_url: str | None, git_revision: str, division: str, submitter: str,
                    fs_group: int | None,
                    config_file: Path | None, set_items: Sequence[str], **flags: Any) -> None:
    """Write the manifests of a run: the options of `mlperf-pilot run` say what is run
    (each run step is the `mlperf-pilot run` line of one scenario), the others where."""
    from mlperf_pilot.pipelines import render
    from mlperf_pilot.pipelines.options import PipelineOptions, render_input
    from mlperf_pilot.pipelines.write import write_manifests

    options = PipelineOptions(image=image, storage_class=storage_class, size=size,
                              namespace=namespace, registry_secret=registry_secret,
                              service_account=service_account, pvc=pvc, cpu=cpu,
                              memory=memory, gpus=gpus, name=prefix, git_url=git_url,
                              git_revision=git_revision, division=division,
                              submitter=submitter, fs_group=fs_group)
    spec = spec_of(state, config_file, set_items, flags)
    planned = render_input(spec, options, target)
    written = write_manifests(render(target, planned), out, force=force)  # type: ignore[arg-type]
    for path in written:
        stdout.print(str(path), soft_wrap=True)
    stderr.print(f"{len(written)} manifests ({target}) for {planned.spec.model} on "
                 f"{planned.system}, scenarios {', '.join(planned.scenarios)}; check them "
                 f"with: mlperf-pilot pipeline validate {out}")


@pipeline.command("validate")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--crds", type=click.Path(path_type=Path), help="A folder of Tekton CRDs "
              "to validate against (default: the Tekton v1 CRDs shipped with mlperf-pilot).")
@click.option("--kubernetes-version", default=DEFAULT_KUBERNETES_VERSION, show_default=True,
              help="The Kubernetes version whose schemas check core kinds (1.25 to 1.37).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@common_options(cache_dir=False)
def pipeline_validate(directory: Path, crds: Path | None, kubernetes_version: str,
                      as_json: bool) -> None:
    """Check manifests offline: Tekton kinds against Tekton's v1 CRD schemas, core kinds
    with kubernetes-validate (strict), references between them (exit 1 on errors)."""
    from mlperf_pilot.pipelines.validate import findings_lines, validate_folder

    report = validate_folder(directory, crds=crds, kubernetes_version=kubernetes_version)
    if as_json:
        sys.stdout.write(json.dumps({
            "ok": report.ok, "folder": str(directory), "files": report.files,
            "objects": report.objects,
            "findings": [{"severity": f.severity.value, "rule": f.rule, "file": f.path,
                          "where": f.result, "message": f.message, "fix": f.fix}
                         for f in report.findings]}, indent=2) + "\n")
    else:
        for line in findings_lines(report):
            stdout.print(line, soft_wrap=True)
        errors, warnings = len(report.errors), len(report.findings) - len(report.errors)
        verdict = "valid" if report.ok else "INVALID"
        stdout.print(f"{directory}: {verdict} ({report.objects} objects in {report.files} "
                     f"files; {errors} errors, {warnings} warnings)")
    if not report.ok:
        raise SystemExit(EXIT_FAILED)


@pipeline.command("collect")
@click.option("--from", "source", type=click.Path(path_type=Path), required=True,
              help="A copy of the results workspace (kubectl cp), or a file (or folder) of "
              "saved pod logs (tkn pipelinerun logs, kubectl logs).")
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="The results folder to bring them into.")
@click.option("--store", type=click.Path(path_type=Path), help="The results store "
              "(default: $MLPERF_PILOT_STORE, else <results-dir>/results.sqlite).")
@click.option("--replace", is_flag=True, help="Replace scenario folders the results "
              "folder has already (default: keep them).")
@click.option("--no-store", is_flag=True, help="Only copy the folders; import nothing.")
@common_options(cache_dir=False)
def pipeline_collect(source: Path, results_dir: Path, store: Path | None, replace: bool,
                     no_store: bool) -> None:
    """Bring a pipeline run's results back into the results folder and the store."""
    from mlperf_pilot.pipelines.collect import collect

    report = collect(source, results_dir, store=store, replace=replace, to_store=not no_store)
    if report.tekton_results:
        for name, value in sorted(report.tekton_results.items()):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            stdout.print(f"{name}: {shown}", soft_wrap=True)
        stderr.print("note: a PipelineRun's results are its verdicts and metrics only; for "
                     "the results themselves collect the run steps' logs or a copy of the "
                     "data volume")
        return
    for name in report.collected:
        stdout.print(f"collected {results_dir / name}", soft_wrap=True)
    for name in report.skipped:
        stdout.print(f"kept {results_dir / name} (there already; --replace to replace it)",
                     soft_wrap=True)
    for folder, why in report.problems:
        stderr.print(f"not imported: {folder}: {why}")
    if report.store is not None:
        stdout.print(f"{report.imported} tests added to {report.store} ({report.known} "
                     "there already)", soft_wrap=True)


@pipeline.command("step-results")
@click.option("--results-dir", type=click.Path(path_type=Path), required=True,
              help="The results folder the run wrote.")
@click.option("--scenario", required=True, help="The scenario the step ran.")
@click.option("--metric-file", type=click.Path(path_type=Path),
              help="Write the headline metric here ($(results.metric.path)).")
@click.option("--verdict-file", type=click.Path(path_type=Path),
              help="Write VALID/INVALID/FAILED here ($(results.verdict.path)).")
def pipeline_step_results(results_dir: Path, scenario: str, metric_file: Path | None,
                          verdict_file: Path | None) -> None:
    """A run step's verdict: its Tekton results, and its results in the log for `pipeline
    collect` (exit 1 unless VALID)."""
    from mlperf_pilot.pipelines.shipping import archive_lines, step_outcome
    from mlperf_pilot.vocab import Scenario

    scenario = Scenario.parse(scenario).value  # as `run --scenario` reads it: offline works
    outcome = step_outcome(results_dir, scenario)
    if metric_file is not None:
        metric_file.write_text(outcome.metric, encoding="utf-8")
    if verdict_file is not None:
        verdict_file.write_text(outcome.verdict, encoding="utf-8")
    stderr.print(f"{scenario}: {outcome.verdict} {outcome.metric}".rstrip())
    if outcome.folder is not None:
        for line in archive_lines(outcome.folder, results_dir):
            sys.stdout.write(line + "\n")
    if outcome.verdict != "VALID":
        raise SystemExit(EXIT_FAILED)


@pipeline.command("image")
@click.option("--cuda", is_flag=True, help="The CUDA variant (build argument CUDA=1: torch's "
              "CUDA wheel, onnxruntime-gpu).")
@click.option("--tag", help="The image's name (default localhost/mlperf-pilot:<version>, "
              "-cuda for --cuda: what `pipeline render` runs by default).")
@click.option("--builder", type=click.Choice(["podman", "buildah", "docker"]),
              help="The builder (default: the first installed of podman, buildah, docker).")
@click.option("--base-image", help="Build argument BASE_IMAGE: a Debian-based image with "
              "python3 >= 3.11 (default: the Containerfile's, python:3.11-slim-bookworm).")
@click.option("--context", type=click.Path(path_type=Path), default=Path("."),
              show_default=True, help="The build context: the mlperf-pilot repository.")
@click.option("--file", "containerfile", type=click.Path(path_type=Path),
              help="The Containerfile (default <context>/Containerfile).")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE",
              help="Another build argument (EXTRAS, TORCH_INDEX_URL, PIP_INDEX_URL, ...).")
@click.option("--builder-arg", "builder_args", multiple=True, metavar="ARG",
              help="An argument passed to the builder as it is "
              "(e.g. --builder-arg=--network=host).")
@click.option("--dry-run", is_flag=True, help="Print the build command; run nothing.")
@common_options(cache_dir=False)
def pipeline_image(cuda: bool, tag: str | None, builder: str | None, base_image: str | None,
                   context: Path, containerfile: Path | None, build_args: Sequence[str],
                   builder_args: Sequence[str], dry_run: bool) -> None:
    """Build the container image from the repository's Containerfile (or print the
    command): non-root, `mlperf-pilot` as its entrypoint, cache and results as volumes."""
    from mlperf_pilot.pipelines.image import (
        ImageBuild,
        ImageBuildError,
        build_command,
        check_context,
        find_builder,
        run_build,
        shown,
    )

    def planned(name: str) -> ImageBuild:
        return ImageBuild(builder=name, context=context, containerfile=containerfile,
                          tag=tag, cuda=cuda, base_image=base_image,
                          build_args=tuple(build_args), builder_args=tuple(builder_args))

    if dry_run:
        build = planned(builder or "podman")
        sys.stdout.write(shown(build_command(build)) + "\n")
        return
    check_context(planned(builder or "podman"))
    build = planned(find_builder(builder))
    argv = build_command(build)
    stderr.print(f"$ {shown(argv)}", soft_wrap=True, markup=False, highlight=False)
    try:
        run_build(argv, lambda line: sys.stdout.write(line + "\n"))
    except ImageBuildError as exc:
        stderr.print(f"last lines of {build.builder}:", markup=False, highlight=False)
        for line in exc.last_lines[-12:]:
            stderr.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
        raise
    stderr.print(f"built {build.image_tag}; run the demo in it with: {build.builder} run "
                 f"--rm -v CACHE:/data/cache -v RESULTS:/data/results {build.image_tag} run",
                 soft_wrap=True, markup=False, highlight=False)
