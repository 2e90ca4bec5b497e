"""`serverless`: build, deploy and remove the function that runs a model behind object
storage (AWS Lambda + S3, or the local stand-ins). Each subcommand lives here; boto3 and
pip are used only inside them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlperf_pilot.cli.app import State, _PlainProgress, cli, common_options, pass_state, stderr
from mlperf_pilot.cli.app import stdout as _stdout


@cli.group()
def serverless() -> None:
    """Package, deploy and destroy the serverless function (AWS Lambda + S3, or local)."""


@serverless.command("package")
@click.option("--model", default="efficientnet-lite0-demo", show_default=True,
              help="Catalog model the function runs.")
@click.option("--backend", type=click.Choice(["onnxruntime", "openvino", "opencv", "null"]),
              default="onnxruntime", show_default=True, help="The engine in the function.")
@click.option("--model-format", help="The card format id (default: the one the backend "
              "prefers, as for `run`).")
@click.option("--model-path", type=click.Path(path_type=Path),
              help="A model file to package instead of the catalog's copy.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for function.zip, layers/*.zip and manifest.json.")
@click.option("--python-version", default=None,
              help="The function runtime's Python (default: this one, e.g. 3.11).")
@click.option("--platform", "platforms", multiple=True,
              help="pip --platform tags for the runtime layer (default: manylinux x86_64).")
@click.option("--no-runtime-layer", is_flag=True,
              help="Skip the runtime layer (the engine and numpy come from elsewhere).")
@click.option("--no-model-layer", is_flag=True,
              help="Skip the model layer (the function downloads the model from the bucket).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@common_options()
@pass_state
def package(state: State, model: str, backend: str, model_format: str | None,
            model_path: Path | None, out_dir: Path, python_version: str | None,
            platforms: tuple[str, ...], no_runtime_layer: bool, no_model_layer: bool,
            as_json: bool) -> None:
    """Build a deployable function: function.zip (handler `mlperf_pilot_fn.handler.handler`
    at its root), layers/runtime.zip and layers/model.zip (`python/` at their roots) and
    manifest.json (every file with its size and sha256, the handler, its environment)."""
    import json

    from mlperf_pilot.cli.render import human_size
    from mlperf_pilot.serverless.package import PackageOptions, build_package

    options = PackageOptions(
        model=model, backend=backend, model_format=model_format, model_path=model_path,
        out_dir=out_dir, python_version=python_version, platforms=tuple(platforms),
        runtime_layer=not no_runtime_layer, model_layer=not no_model_layer)
    built = build_package(options, cache=state.cache(), progress=_PlainProgress())
    if as_json:
        sys.stdout.write(json.dumps(built.manifest, indent=2) + "\n")
    else:
        for item in built.manifest["artifacts"]:
            unzipped = f" ({human_size(item['unzipped_bytes'])} unzipped)" \
                if item.get("unzipped_bytes") is not None else ""
            _stdout.print(f"{human_size(item['size_bytes']):>10}  {item['path']}{unzipped}")
        limits = built.manifest["limits"]
        _stdout.print(f"{human_size(limits['total_unzipped_bytes']):>10}  unzipped in all "
                      f"(Lambda's limit: {human_size(limits['unzipped_bytes'])})")
        _stdout.print(f"handler {built.manifest['handler']}; backend {backend}; model "
                      f"{built.manifest['model']['name']} ({built.manifest['model']['format']}); "
                      f"manifest {built.out_dir / 'manifest.json'}")
    for warning in built.warnings:
        stderr.print(f"warning: {warning}")


def _memory_sizes(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of MB") from None
    if not sizes:
        raise click.BadParameter("give at least one memory size")
    return tuple(dict.fromkeys(sizes))


def _aws_target(region: str | None, endpoint_url: str | None, profile: str | None) -> object:
    from mlperf_pilot.serverless.aws import AwsTarget

    return AwsTarget(region=region, endpoint_url=endpoint_url, profile=profile)


def _aws_options(func: object) -> object:
    for option in reversed([
        click.option("--region", help="AWS region (default: the profile's or "
                     "$AWS_DEFAULT_REGION, else us-east-1)."),
        click.option("--endpoint-url", help="One S3-compatible endpoint for S3, SQS, Lambda "
                     "and IAM (a local moto server: http://127.0.0.1:PORT)."),
        click.option("--profile", help="A named profile of the AWS config files "
                     "(credentials come from boto3's usual chain)."),
    ]):
        func = option(func)
    return func


def _print_changes(result: object, verb: str) -> None:
    changes = result.changes  # type: ignore[attr-defined]
    width = max((len(c.kind) for c in changes), default=0)
    for change in changes:
        detail = f"  ({change.detail})" if change.detail else ""
        _stdout.print(f"{change.action:<8} {change.kind:<{width}}  {change.name}{detail}")
    counts = {a: sum(1 for c in changes if c.action == a)
              for a in ("created", "updated", "kept", "deleted", "gone")}
    summary = ", ".join(f"{n} {a}" for a, n in counts.items() if n)
    if verb == "deploy" and not result.changed:  # type: ignore[attr-defined]
        _stdout.print(f"deploy: nothing to change ({summary})")
    else:
        _stdout.print(f"{verb}: {summary}")


@serverless.command("deploy")
@click.option("--bucket", required=True, help="The S3 bucket (created when missing).")
@click.option("--function-name", default="", help="Base name of the functions: one per "
              "memory size, <name>-<MB>.")
@click.option("--role", default="", help="The functions' execution role ARN.")
@click.option("--memory-mb", default="768,1536,2240,3008", show_default=True,
              callback=_memory_sizes, help="Comma-separated memory sizes, one function each.")
@click.option("--package", "package_dir", type=click.Path(path_type=Path, file_okay=False),
              help="A `serverless package --out` folder; without it only the storage side "
                   "(bucket, prefixes, output queue) is set up.")
@click.option("--model-path", "model_paths", multiple=True, type=click.Path(path_type=Path,
              dir_okay=False, exists=True), help="The model file, uploaded to the bucket "
              "(needed when the package has no model layer).")
@click.option("--timeout-s", default=300, show_default=True, type=click.IntRange(1, 900),
              help="The functions' timeout.")
@click.option("--function-s3-endpoint", help="An S3 endpoint URL the functions use "
              "(MLPERF_FN_S3_ENDPOINT); default: AWS's.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_aws_options
@common_options(cache_dir=False)
def deploy_command(bucket: str, function_name: str, role: str, memory_mb: tuple[int, ...],
                   package_dir: Path | None, model_paths: tuple[Path, ...], timeout_s: int,
                   function_s3_endpoint: str | None, as_json: bool, region: str | None,
                   endpoint_url: str | None, profile: str | None) -> None:
    """Create or update the bucket, the model object, the layers, one function per memory
    size, S3's invoke permission and the bucket's notifications (input/ -> functions,
    output/ -> the host's SQS queue). A second deploy changes nothing it need not."""
    import json
    from dataclasses import asdict

    from mlperf_pilot.serverless.deploy import DeployOptions, deploy

    options = DeployOptions(
        bucket=bucket, function_name=function_name, role=role, memory_mb=memory_mb,
        package_dir=package_dir, target=_aws_target(region, endpoint_url, profile),
        timeout_s=timeout_s, model_paths=model_paths,
        function_s3_endpoint=function_s3_endpoint)
    result = deploy(options)
    if as_json:
        click.echo(json.dumps({"ok": True, "changed": result.changed,
                               "changes": [asdict(c) for c in result.changes],
                               "state": asdict(result.state)}, indent=2))
    else:
        _print_changes(result, "deploy")


@serverless.command("destroy")
@click.option("--bucket", required=True, help="The bucket deploy recorded its state in.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_aws_options
@common_options(cache_dir=False)
def destroy_command(bucket: str, as_json: bool, region: str | None, endpoint_url: str | None,
                    profile: str | None) -> None:
    """Remove what `serverless deploy` created (its state object in the bucket says what):
    notifications, functions, layer versions, queues, objects, and the bucket if deploy
    made it."""
    import json
    from dataclasses import asdict

    from mlperf_pilot.serverless.deploy import destroy

    result = destroy(bucket, _aws_target(region, endpoint_url, profile))
    if as_json:
        click.echo(json.dumps({"ok": True, "changes": [asdict(c) for c in result.changes]},
                              indent=2))
    else:
        _print_changes(result, "destroy")


# the run flags a sweep passes on to every point, as `run` spells and helps them
_SWEEP_RUN_FLAGS = ("--model-format", "--model-path", "--bucket", "--storage-endpoint",
                    "--functions", "--concurrency", "--request-timeout-ms", "--dataset",
                    "--dataset-path", "--scenario", "--mode", "--count", "--duration-ms",
                    "--target-qps", "--target-latency-ms", "--max-batch-size", "--threads",
                    "--allow-unverified-download", "--inline-samples-mb")


def _sweep_run_options(func: object) -> object:
    from mlperf_pilot.cli.run_cmd import _click_settings
    from mlperf_pilot.config.flags import flags_for

    chosen = [f for f in flags_for("run") if f.name in _SWEEP_RUN_FLAGS]
    for flag in reversed(chosen):
        func = click.option(flag.name, flag.dest, **_click_settings(flag, "run"))(func)
    return func


def _names(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not names:
        raise click.BadParameter("give at least one backend")
    return names


@serverless.command("sweep")
@click.option("--model", default="efficientnet-lite0-demo", show_default=True,
              help="Catalog model the functions run.")
@click.option("--backend", "backends", default="onnxruntime", show_default=True,
              callback=_names, help="Comma-separated engines, one sweep each.")
@click.option("--memory-mb", default="768,1536,2240,3008", show_default=True,
              callback=_memory_sizes, help="Comma-separated memory sizes, one run each.")
@click.option("--function-name", default=None, help="With --functions aws: the deployed "
              "functions' base name (each size's is <name>-<MB>, as deploy names them).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Folder for sweep.json, sweep.md, the PNG charts and "
              "runs/<backend>-<MB>mb/ (each point's results).")
@_sweep_run_options
@click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE",
              help="Any run setting, for every point (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print sweep.json's content.")
@common_options()
@pass_state
def sweep_command(state: State, model: str, backends: tuple[str, ...],
                  memory_mb: tuple[int, ...], function_name: str | None, out_dir: Path,
                  set_items: tuple[str, ...], as_json: bool, **flags: object) -> None:
    """Run the serverless benchmark (`run --sut serverless`) once per memory size and
    engine, then write a table (sweep.md), sweep.json and bar charts: LoadGen's QPS and
    p50/p90 latency per memory size, and the function side (cold/warm load_model,
    image_operations, forward). A failed point is recorded with its reason and the sweep
    goes on; exit 1 if any point failed or any test was not VALID."""
    import json

    from mlperf_pilot.config import parse_set_option
    from mlperf_pilot.config.flags import flags_to_layer
    from mlperf_pilot.errors import EXIT_FAILED, EXIT_OK
    from mlperf_pilot.serverless.sweep import SweepOptions, SweepPoint, run_sweep

    layers: list[dict[str, object]] = [parse_set_option(item) for item in set_items]
    flag_layer = flags_to_layer(flags)
    if state.cache_dir is not None:
        flag_layer["cache_dir"] = state.cache_dir
    layers.append(flag_layer)
    options = SweepOptions(model=model, backends=backends, memory_mb=memory_mb,
                           out_dir=out_dir, layers=tuple(layers), function_name=function_name)

    def shown(point: SweepPoint) -> None:
        verdict = "ok" if point.ok else "FAILED" if point.error else "not VALID"
        stderr.print(f"sweep: {point.backend} {point.memory_mb} MB: {verdict} "
                     f"({point.seconds:.0f} s)" + "".join(f"\n  {r}" for r in point.reasons()))

    result = run_sweep(options, cache=state.cache(), progress=_PlainProgress(),
                       on_point=shown)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        _stdout.print(_sweep_table(result))
        for note in result.notes:
            stderr.print(f"note: {note}")
        _stdout.print("wrote " + ", ".join(str(f) for f in result.files))
    failed = result.failed()
    if failed:
        stderr.print(f"error: {len(failed)} of {len(result.points)} sweep point(s) failed or "
                     f"were not VALID: " + ", ".join(f"{p.backend} {p.memory_mb} MB"
                                                     for p in failed))
    raise SystemExit(EXIT_FAILED if failed else EXIT_OK)


def _sweep_table(result: object) -> object:
    from rich.table import Table

    table = Table("engine", "MB", "scenario", "mode", "QPS", "p50 ms", "p90 ms", "status",
                  "reasons")
    for point in result.points:  # type: ignore[attr-defined]
        if point.error is not None:
            table.add_row(point.backend, str(point.memory_mb), "-", "-", "-", "-", "-",
                          "FAILED", point.error)
            continue
        for row in point.rows:
            table.add_row(row.backend, str(row.memory_mb), row.scenario, row.mode,
                          f"{row.qps:.2f}" if row.qps is not None else "-",
                          f"{row.p50_ms:.2f}" if row.p50_ms is not None else "-",
                          f"{row.p90_ms:.2f}" if row.p90_ms is not None else "-",
                          row.status, "; ".join(row.reasons))
    return table
