"""Layering: the config layers merged in order, then validated once into a RunSpec.

The same schema is filled from YAML files, ``--set key=value`` and CLI flags, layered in
this order (later wins)::

    defaults < catalog card run_defaults < --config file < --set key=value < explicit flags

Each layer's flat keys of old configs (``backend: ...``) are first moved under ``sut``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mlperf_pilot.config.spec import (
    MAX_DURATION_MS,
    MAX_LATENCY_MS,
    MAX_QPS,
    MIN_DURATION_MS,
    MIN_QPS,
    RunSpec,
)
from mlperf_pilot.config.sut import LEGACY_SUT_KEYS, SutConfig, known_sut_fields, lift_legacy_keys
from mlperf_pilot.errors import ConfigError


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``; nested mappings merge key by key."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_set_option(item: str) -> dict[str, Any]:
    """Turn ``a.b=value`` into ``{"a": {"b": value}}``; the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--set expects key=value, got {item!r}", hint="e.g. --set sut.max_batch_size=16"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    _check_key_path(parts)
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    return nested


def _check_key_path(parts: list[str]) -> None:
    if parts[0] in LEGACY_SUT_KEYS:  # the flat spelling of a local SUT setting
        parts = ["sut", *parts]
    model: type[BaseModel] | None = RunSpec
    for depth, part in enumerate(parts):
        fields = _fields(model, parts[:depth])
        if part not in fields:
            prefix = ".".join(parts[:depth])
            where = f" under {prefix!r}" if prefix else ""
            raise ConfigError(
                f"unknown setting {'.'.join(parts)!r}{where}",
                hint=f"valid keys{where}: {', '.join(sorted(fields))}",
            )
        annotation = fields[part]
        model = annotation if isinstance(annotation, type) and issubclass(
            annotation, BaseModel) else None


def _fields(model: type[BaseModel] | None, path: list[str]) -> dict[str, Any]:
    """The settings under ``path``: a model's fields; under ``sut``, those of every SUT
    kind (which kind a layer means is known only once the layers are merged)."""
    if model is None:
        return {}
    if path == ["sut"]:
        return {name: cls.model_fields[name].annotation
                for name, cls in known_sut_fields().items()}
    fields = {name: info.annotation for name, info in model.model_fields.items()}
    if model is RunSpec:
        fields.update(dict.fromkeys(LEGACY_SUT_KEYS))
        fields["sut"] = SutConfig
    return fields


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML/JSON run config; the top level must be a mapping of RunSpec keys."""
    fix = "give --config a YAML or JSON file of run settings (e.g. 'model: resnet50')"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist", hint="check the path given to --config"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder, not a file", hint=fix) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not a text file (byte {exc.start} is not UTF-8)", hint=fix
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}",
                          hint=fix) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"config file {path} is not valid YAML{where}", hint="fix the syntax and retry"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of settings, not {type(data).__name__}",
            hint="e.g. 'model: resnet50' on its own line",
        )
    return data


def build_run_spec(layers: Iterable[Mapping[str, Any]]) -> RunSpec:
    """Merge the layers (lowest first) and validate them into a RunSpec."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, lift_legacy_keys(layer))
    try:
        return RunSpec.model_validate(merged)
    except ValidationError as exc:
        raise config_error_from(exc) from None


def config_error_from(exc: ValidationError) -> ConfigError:
    """One line per problem, naming the setting and what is wrong with it."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        value = err.get("input")
        shown = f" (got {value!r})" if err["type"] != "extra_forbidden" and not isinstance(
            value, (dict, list)) else ""
        problems.append(f"{loc}: {msg}{shown}")
    first, rest = problems[0], problems[1:]
    more = f" (and {len(rest)} more: {'; '.join(rest)})" if rest else ""
    errors = exc.errors()
    loc = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
    owner = _sut_kind_of(loc) if errors and errors[0]["type"] == "extra_forbidden" else None
    hint = (f"{loc} is a setting of --sut {owner}: leave it out, or use --sut {owner}"
            if owner else None) or _HINTS.get(loc) or (
        f"fix {loc} (in --config, or --set {loc}=VALUE); see `mlperf-pilot run --help`"
        if loc else "see `mlperf-pilot run --help`")
    return ConfigError(f"invalid setting {first}{more}", hint=hint)


def _sut_kind_of(loc: str) -> str | None:
    """The SUT kind whose setting ``sut.NAME`` is (for one given to another kind)."""
    prefix, _, name = loc.partition(".")
    if prefix != "sut" or not name or "." in name:
        return None
    owner = known_sut_fields().get(name)
    kind = owner.model_fields["kind"].default if owner is not None else None
    return kind if isinstance(kind, str) else None


# the fix for a value out of range, by setting (the flag that sets it, where there is one)
_HINTS = {
    "count": "give --count a number of samples, 1 or more (more than the data set has "
             "uses all of it)",
    "loadgen.min_duration_ms": f"use --duration-ms {MIN_DURATION_MS} or more (at most "
                               f"{MAX_DURATION_MS}): a shorter run measures nothing (at 0 "
                               "LoadGen runs one query and calls it VALID)",
    "test_duration_ms": f"set test_duration_ms to {MIN_DURATION_MS} or more (at most "
                        f"{MAX_DURATION_MS}); a shorter run measures nothing",
    "loadgen.target_qps": f"give --target-qps a finite number of queries per second from "
                          f"{MIN_QPS:g} to {MAX_QPS:,.0f}, or leave it out (estimated or "
                          "calibrated)",
    "loadgen.target_latency_ms": "give --target-latency-ms a finite number of milliseconds "
                                 f"above 0, at most {MAX_LATENCY_MS:,.0f}, or leave it out",
    "sut.max_batch_size": "give --max-batch-size a whole number, 1 or more",
    "sut.threads": "give --threads a whole number, 0 (by cores) or more",
    "sut.workers": "give --workers a whole number, 0 (by scenario) or more",
    "sut.endpoint": "give --endpoint the http(s) URL of an Open Inference Protocol server; "
                    "it implies --sut oip and is no setting of another --sut",
    "sut.concurrency": "give --concurrency a whole number of requests in flight (with "
                       "--sut oip or serverless), 0 (by scenario) or more",
    "sut.request_timeout_ms": "give --request-timeout-ms a whole number of milliseconds, 1 "
                              "or more (with --sut oip or serverless)",
    "sut.memory_mb": "give --memory-mb a Lambda memory size in MB, 128 to 10240",
    "sut.prefix": "give sut.prefix as folder names each ending in '/', e.g. team-a/",
}


def default_cache_dir() -> Path:
    """``MLPERF_PILOT_CACHE`` if set, else the platform's user cache dir."""
    env = os.environ.get("MLPERF_PILOT_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mlperf-pilot"))


def cache_dir_for(spec: RunSpec | None, cli_default: Path | None = None) -> Path:
    """The asset cache a run uses, the one precedence everywhere: the spec's
    ``cache_dir`` (the CLI puts ``--cache-dir`` in its flag layer, over ``--set
    cache_dir=`` and a config file), else ``cli_default``, else :func:`default_cache_dir`
    (``MLPERF_PILOT_CACHE``, else the platform's user cache dir)."""
    chosen = spec.cache_dir if spec is not None else None
    return Path(chosen or cli_default or default_cache_dir())
