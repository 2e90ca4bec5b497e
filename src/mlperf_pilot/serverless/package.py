"""`mlperf-pilot serverless package`: the deployable function of a catalog model.

Writes into the output folder::

    function.zip          mlperf_pilot_fn/ at the root: handler.py, engines.py and a copy of
                          mlperf_pilot/serverless/messages.py (handler
                          ``mlperf_pilot_fn.handler.handler``); nothing of mlperf_pilot
    layers/runtime.zip    python/: the engine and numpy (pip, for the function's Python
                          and platform; cached)
    layers/model.zip      python/mlperf_pilot_model/: the model file(s) (an IR's .xml and
                          .bin, a .prototxt and its .caffemodel), at /opt/python/... in Lambda
    manifest.json         every file with its size and sha256, the handler, the backend,
                          the model (files, sha256, its key in the bucket) and the
                          environment the function needs

The model file is resolved exactly as ``run`` resolves it for the local SUT
(``LocalKind.plan`` + ``resolve``: the card format the backend prefers, ``--model-path``,
the cache, a build or conversion, a verified download). The function finds the model in
its model layer, or, when deploy sets ``MLPERF_FN_MODEL_KEY``, downloads it from the
bucket (``models/<sha256>/<file>``, every companion file under the same folder).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlperf_pilot.progress import NULL_PROGRESS
from mlperf_pilot.serverless import layers
from mlperf_pilot.serverless.layers import ZipFacts
from mlperf_pilot.storage import file_sha256

HANDLER = "mlperf_pilot_fn.handler.handler"
FUNCTION_PACKAGE = "mlperf_pilot_fn"
FUNCTION_SOURCE = Path(__file__).parent / "function" / FUNCTION_PACKAGE
MESSAGES_SOURCE = Path(__file__).parent / "messages.py"
MODEL_LAYER_DIR = "python/mlperf_pilot_model"  # /opt/python/mlperf_pilot_model in Lambda
MANIFEST_VERSION = 1
# the second file a model format needs, beside the first (as the function's engines read)
_COMPANIONS = {".xml": (".bin",), ".prototxt": (".caffemodel",), ".cfg": (".weights",),
               ".pb": (".pbtxt",)}


@dataclass(frozen=True)
class PackageOptions:
    model: str
    backend: str
    out_dir: Path
    model_format: str | None = None
    model_path: Path | None = None
    python_version: str | None = None
    platforms: tuple[str, ...] = ()
    runtime_layer: bool = True
    model_layer: bool = True


@dataclass
class BuiltPackage:
    out_dir: Path
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def stage_function(dest: Path) -> Path:
    """Write the function's package (``mlperf_pilot_fn/`` with its messages copy) into
    ``dest``; returns ``dest``, the folder to put on ``sys.path`` (Lambda's task root).
    The local function pool runs this very tree, as Lambda runs function.zip."""
    package = Path(dest) / FUNCTION_PACKAGE
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    for source in sorted(FUNCTION_SOURCE.glob("*.py")):
        shutil.copyfile(source, package / source.name)
    shutil.copyfile(MESSAGES_SOURCE, package / "messages.py")
    return Path(dest)


def model_files(path: Path) -> list[Path]:
    """The model's main file followed by the companions its format needs that exist."""
    path = Path(path)
    return [path] + [path.with_suffix(s) for s in _COMPANIONS.get(path.suffix.lower(), ())
                     if path.with_suffix(s).is_file()]


def function_environment(backend: str, fmt: Any, main_file: str | None) -> dict[str, str]:
    """The settings the handler reads (``MLPERF_FN_*``) that the package knows; deploy adds
    the bucket, the model key and the endpoint."""
    env = {"MLPERF_FN_BACKEND": backend}
    if main_file:
        env["MLPERF_FN_MODEL_FILE"] = main_file
    shape = list(fmt.inputs[0].shape) if fmt.inputs else []
    if len(shape) == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3):
        env["MLPERF_FN_INPUT_LAYOUT"] = "NHWC"  # the tool's OpenCV backend's rule
    env["MLPERF_FN_OUTPUTS"] = ",".join(fmt.postprocess.outputs or fmt.outputs)
    if fmt.options:
        env["MLPERF_FN_OPTIONS"] = json.dumps(fmt.options, sort_keys=True)
    return env


def resolve_for_function(options: PackageOptions, *, cache: Any, progress: Any
                         ) -> tuple[Any, Any, Path | None, str, bool | None]:
    """(card, format, model path, where it came from, verified) as ``run`` resolves
    them for the local SUT with the same backend."""
    from mlperf_pilot.catalog import load_catalog
    from mlperf_pilot.config import RunSpec
    from mlperf_pilot.config.sut import LocalSutConfig
    from mlperf_pilot.sut.local_kind import LocalKind

    catalog = load_catalog()
    card = catalog.model(options.model)
    sut = LocalSutConfig(backend=options.backend, model_format=options.model_format,
                         model_path=options.model_path)
    spec = RunSpec(model=card.name, sut=sut)
    plan = LocalKind.plan(spec, card, catalog)
    resolved = LocalKind.resolve(spec, plan, card, cache=cache, progress=progress)
    local = resolved.config
    path = Path(local.model_path) if getattr(local, "model_path", None) else None
    return card, plan.fmt, path, resolved.source, resolved.model_verified


def build_package(options: PackageOptions, *, cache: Any, progress: Any = NULL_PROGRESS
                  ) -> BuiltPackage:
    from mlperf_pilot.serverless.messages import model_key

    out = Path(options.out_dir).expanduser().resolve()
    card, fmt, model_path, source, verified = resolve_for_function(
        options, cache=cache, progress=progress)
    python_version = options.python_version or layers.default_python()
    platforms = options.platforms or layers.default_platforms()
    (out / "layers").mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    artifacts: list[tuple[str, ZipFacts, dict[str, Any]]] = []

    with tempfile.TemporaryDirectory(prefix="mlperf-fn-") as tmp:
        staged = stage_function(Path(tmp) / "function")
        facts = layers.write_zip(out / "function.zip", staged)
        members = [_file_entry(p, staged) for p in sorted(staged.rglob("*.py"))]
        artifacts.append(("function", facts, {"members": members}))

    files = model_files(model_path) if model_path is not None else []
    model_entries = [{"name": p.name, "size_bytes": p.stat().st_size,
                      "sha256": file_sha256(p)} for p in files]
    main_sha = model_entries[0]["sha256"] if model_entries else None
    stale_model = out / "layers" / "model.zip"
    if options.model_layer and files:
        with tempfile.TemporaryDirectory(prefix="mlperf-fn-model-") as tmp:
            folder = Path(tmp) / MODEL_LAYER_DIR
            folder.mkdir(parents=True)
            for p in files:
                _link_or_copy(p, folder / p.name)
            facts = layers.write_zip(stale_model, Path(tmp))
        artifacts.append(("model-layer", facts, {"layer_dir": "/opt/" + MODEL_LAYER_DIR}))
    elif stale_model.exists():
        stale_model.unlink()  # not part of this package: no leftover of an earlier one

    runtime_zip = out / "layers" / "runtime.zip"
    if options.runtime_layer:
        facts, meta = layers.build_runtime_layer(options.backend, python_version, platforms,
                                                 runtime_zip, cache=cache, progress=progress)
        warnings += layers.glibc_warnings(meta.get("wheel_tags", {}), python_version)
        artifacts.append(("runtime-layer", facts, {
            "requirements": layers.requirements(options.backend),
            "python_version": python_version, "platforms": list(platforms),
            "pruned_bytes": meta.get("pruned_bytes"), "wheel_tags": meta.get("wheel_tags")}))
    elif runtime_zip.exists():
        runtime_zip.unlink()

    zips = [facts for _, facts, _ in artifacts]
    warnings += layers.limit_warnings(zips)
    environment = function_environment(options.backend, fmt,
                                       files[0].name if files else None)
    total_unzipped = sum(f.unzipped_bytes for f in zips)
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "handler": HANDLER,
        "runtime": f"python{python_version}",
        "backend": options.backend,
        "model": {
            "name": card.name, "format": fmt.id, "file_format": fmt.format,
            "file": files[0].name if files else None, "files": model_entries,
            "sha256": main_sha,
            "key": model_key(main_sha, files[0].name) if main_sha and files else None,
            "source": source, "verified": verified,
            "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype}
                       for i in fmt.inputs],
            "outputs": list(fmt.postprocess.outputs or fmt.outputs),
            "layer_dir": "/opt/" + MODEL_LAYER_DIR if options.model_layer and files else None,
        },
        "environment": environment,
        "artifacts": [
            {"path": facts.path.relative_to(out).as_posix(), "kind": kind,
             "size_bytes": facts.size_bytes, "unzipped_bytes": facts.unzipped_bytes,
             "files": facts.files, "sha256": file_sha256(facts.path), **extra}
            for kind, facts, extra in artifacts],
        "limits": {"direct_upload_bytes": layers.DIRECT_UPLOAD_LIMIT,
                   "unzipped_bytes": layers.UNZIPPED_LIMIT,
                   "total_unzipped_bytes": total_unzipped,
                   "fits_unzipped": total_unzipped <= layers.UNZIPPED_LIMIT},
        "warnings": warnings,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return BuiltPackage(out_dir=out, manifest=manifest, warnings=warnings)


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """The manifest of a package folder (deploy reads it)."""
    from mlperf_pilot.errors import ConfigError

    path = Path(out_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a package manifest: {exc}",
                          hint="build the package with `mlperf-pilot serverless package`"
                          ) from None
    if manifest.get("version") != MANIFEST_VERSION:
        raise ConfigError(f"{path} has manifest version {manifest.get('version')!r}",
                          hint="rebuild it with this mlperf-pilot's `serverless package`")
    return manifest  # type: ignore[no-any-return]


def _file_entry(path: Path, root: Path) -> dict[str, Any]:
    return {"name": path.relative_to(root).as_posix(), "size_bytes": path.stat().st_size,
            "sha256": file_sha256(path)}


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.symlink_to(source.resolve())
    except OSError:
        shutil.copyfile(source, target)


__all__ = ["FUNCTION_PACKAGE", "HANDLER", "MODEL_LAYER_DIR", "BuiltPackage", "PackageOptions",
           "build_package", "function_environment", "model_files", "read_manifest",
           "resolve_for_function", "stage_function"]
