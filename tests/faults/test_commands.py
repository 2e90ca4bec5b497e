"""Exact commands, codes and help: what the CLI says and returns, read as a user reads it
(exit codes, the --json error object, help texts with their defaults, unique cache
names, a model file of the wrong format refused before any work, a checker that does not
write into the tree it checks)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import click
from faultkit import CliResult, assert_clean_error

from mlperf_pilot.assets.cache import AssetCache, BuildResult
from mlperf_pilot.assets.file_formats import detect_file_format
from mlperf_pilot.cli.app import cli as cli_group
from submission_trees import build_tree

Cli = Callable[..., CliResult]


# ----------------------------------------------------------------------- exit codes


def test_missing_files_are_usage_errors(cli: Cli, tmp_path: Path) -> None:
    assert_clean_error(cli("cache", "add", "resnet50", tmp_path / "absent.onnx"), 2,
                       cause="does not exist", fix="existing file")
    assert_clean_error(cli("cache", "add", "imagenet", tmp_path / "no-imagenet"), 2,
                       cause="does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(cli("cache", "add", "imagenet", empty), 2, cause="val_map.txt")
    # no ImageNet anywhere: no --dataset-path, nothing registered
    result = cli("run", "--model", "resnet50", "--backend", "null", "--count", "2",
                 "--results-dir", tmp_path / "res")
    assert_clean_error(result, 2, cause="no local copy of ImageNet", fix="cache add imagenet")


def test_a_bad_value_is_a_usage_error(cli: Cli) -> None:
    assert_clean_error(cli("run", "--count", "0"), 2, cause="count")


# ------------------------------------------------------------------ --json on failure


def test_run_json_prints_an_error_object_on_failure(cli: Cli) -> None:
    result = cli("run", "--json", "--model", "nope")
    assert result.code == 2
    payload = json.loads(result.out)
    assert payload["ok"] is False
    error = payload["error"]
    assert error["message"] == "unknown model 'nope'"
    assert "efficientnet-lite0-demo" in error["hint"]
    assert error["exit_code"] == 2 and error["type"] == "UnknownPluginError"
    # a usage error of click itself too
    result = cli("run", "--no-such-flag", "--json")
    payload = json.loads(result.out)
    assert result.code == 2 and payload["error"]["exit_code"] == 2
    assert "--no-such-flag" in payload["error"]["message"]
    assert payload["error"]["hint"] == "see `mlperf-pilot run --help`"


# --------------------------------------------------------------- format mismatches


def test_a_model_file_of_another_format_is_refused_before_any_work(
    cli: Cli, tmp_path: Path, logits_model: Path,
) -> None:
    onnx = tmp_path / "x.onnx"
    onnx.write_bytes(logits_model.read_bytes())
    results = tmp_path / "res"
    result = cli("run", "--backend", "tensorflow", "--model-path", onnx,
                 "--results-dir", results)
    assert_clean_error(result, 2, cause="x.onnx is an ONNX model",
                       fix="--backend onnxruntime")
    assert "would read it as efficientnet-lite0-demo format tensorflow" in result.err
    assert not results.exists()  # refused in the plan: nothing loaded, nothing written
    # the content tells, not only the name
    bare = tmp_path / "model"
    bare.write_bytes(logits_model.read_bytes())
    assert_clean_error(cli("run", "--backend", "tflite", "--model-path", bare), 2,
                       cause="is an ONNX model")
    # a TFLite flatbuffer given to onnxruntime
    flat = tmp_path / "m.bin"
    flat.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    assert_clean_error(cli("run", "--model-path", flat), 2, cause="is a TFLite flatbuffer",
                       fix="--backend tflite")


def test_model_file_formats_are_told_from_their_content(tmp_path: Path,
                                                        logits_model: Path) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    script = tmp_path / "model.bin"
    with zipfile.ZipFile(script, "w") as archive:
        archive.writestr("model/data.pkl", b"\x80\x02")
        archive.writestr("model/version", b"3")
    (tmp_path / "frozen.pb").write_bytes(b"\x0a\x05")
    (tmp_path / "net.xml").write_text("<net/>")
    (tmp_path / "unknown.bin").write_bytes(b"\x00" * 32)
    assert detect_file_format(logits_model) == "onnx"
    assert detect_file_format(saved) == "tensorflow"
    assert detect_file_format(script) == "pytorch"
    assert detect_file_format(tmp_path / "frozen.pb") == "tensorflow"
    assert detect_file_format(tmp_path / "net.xml") == "openvino"
    assert detect_file_format(tmp_path / "unknown.bin") is None
    assert detect_file_format(tmp_path) is None  # a folder without a SavedModel


# ------------------------------------------------------------------ checksum mismatch


def test_cache_add_with_a_checksum_mismatch_offers_the_two_ways_on(
    cli: Cli, resnet50_model: Path,
) -> None:
    result = cli("cache", "add", "resnet50", resnet50_model)
    assert_clean_error(result, 1, cause="is not the official resnet50 file",
                       fix=f"mlperf-pilot run --model resnet50 --model-path {resnet50_model}")
    hint = " ".join(ln for ln in result.err.splitlines() if ln.startswith("hint:"))
    assert "open division" in hint
    assert f"cache add --no-verify resnet50 {resnet50_model}" in hint
    assert "checksum mismatch" in result.err  # both hashes named
    # the second way works, and says so
    added = cli("cache", "add", "--no-verify", "resnet50", resnet50_model)
    assert added.code == 0 and "registered model resnet50" in added.out


# -------------------------------------------------------------------- cache names


def _two_entries_named(cache: AssetCache, name: str) -> list[Path]:
    paths = []
    for root in ("/data/a", "/data/b"):
        def build(folder: Path, root: str = root) -> BuildResult:
            (folder / "x.npy").write_bytes(b"x")
            return BuildResult(main=None, source=f"preprocessed from {root}")

        entry, _ = cache.get_or_build("preprocessed", name, {"dataset": {"root": root}},
                                      build)
        paths.append(entry.path)
    return paths


def test_cache_names_are_unique_and_path_lists_the_candidates(cli: Cli,
                                                              cache_dir: Path) -> None:
    cache = AssetCache(cache_dir)
    first, second = _two_entries_named(cache, "imagenet-3x224x224")
    listed = json.loads(cli("cache", "list", "--json").out)
    names = [row["name"] for row in listed]
    assert len(names) == len(set(names)) == 2
    assert all(n.startswith("imagenet-3x224x224@") for n in names)
    table = cli("cache", "list").out
    for name in names:
        assert name in table
    # one name, two entries: the candidates with what tells them apart, no path on stdout
    result = cli("cache", "path", "imagenet-3x224x224")
    assert_clean_error(result, 2, cause="2 cache entries are named",
                       fix="mlperf-pilot cache path imagenet-3x224x224@")
    assert result.out == ""
    assert "dataset.root=/data/a" in result.err and "dataset.root=/data/b" in result.err
    # the unique name gives one path
    by_root = {row["source"]: row for row in listed}
    chosen = by_root["preprocessed from /data/b"]
    result = cli("cache", "path", chosen["name"])
    assert result.code == 0 and result.out.strip() == str(second)
    # clear with the shared name removes nothing; with the unique name one entry
    assert cli("cache", "clear", "imagenet-3x224x224").code == 2
    assert first.is_dir() and second.is_dir()
    cleared = cli("cache", "clear", chosen["name"])
    assert cleared.code == 0 and "removed 1 entry" in cleared.out
    assert first.is_dir() and not second.exists()
    # alone now, the entry goes by its plain name again (the full one still works)
    assert [r["name"] for r in json.loads(cli("cache", "list", "--json").out)] == [
        "imagenet-3x224x224"]
    assert cli("cache", "path", "imagenet-3x224x224").out.strip() == str(first)


def test_registering_a_name_again_replaces_it(cli: Cli, tmp_path: Path,
                                              colour_imagenet: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "val_map.txt").write_text(
        (colour_imagenet / "val_map.txt").read_text().splitlines()[0] + "\n")
    first_image = (colour_imagenet / "val_map.txt").read_text().split()[0]
    (other / first_image).parent.mkdir(parents=True, exist_ok=True)
    (other / first_image).write_bytes((colour_imagenet / first_image).read_bytes())
    assert cli("cache", "add", "imagenet", colour_imagenet).code == 0
    assert cli("cache", "add", "imagenet", other).code == 0
    rows = json.loads(cli("cache", "list", "--json").out)
    assert [(r["name"], r["path"]) for r in rows] == [("imagenet", str(other.resolve()))]
    assert cli("cache", "path", "imagenet").out.strip() == str(other.resolve())


# ------------------------------------------------------------------------ options


def test_debug_and_cache_dir_are_accepted_after_the_command(cli: Cli, tmp_path: Path,
                                                            colour_imagenet: Path) -> None:
    mine = tmp_path / "my-cache"
    assert cli("cache", "add", "imagenet", colour_imagenet, "--cache-dir", mine).code == 0
    assert cli("cache", "path", "--cache-dir", mine).out.strip() == str(mine.resolve())
    rows = json.loads(cli("cache", "list", "--json", "--cache-dir", mine).out)
    assert [r["name"] for r in rows] == ["imagenet"]
    assert json.loads(cli("cache", "list", "--json").out) == []  # the default cache
    result = cli("run", "--debug", "--model", "nope")
    assert result.code == 2 and "Traceback" in result.err  # --debug took effect
    assert "error: unknown model 'nope'" in result.err


def test_run_help_shows_every_option_with_its_default(cli: Cli) -> None:
    result = cli("run", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    for needle in ("--debug", "--cache-dir", "Show tracebacks",
                   "default: the card's, else both",            # --mode
                   "default: the card's, else Offline",         # --scenario
                   "default: the model card's, onnxruntime for the demo",  # --backend
                   "default cpu",                               # --device
                   "test: short runs (default)",                # --execution-mode
                   "default: the demo,"):
        assert needle in text, needle


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
    return found


def test_every_option_of_every_command_says_what_it_does() -> None:
    missing = [f"{path} {param.opts[0]}" for path, command in _commands(cli_group)
               for param in command.params
               if isinstance(param, click.Option) and not (param.help or "").strip()]
    assert missing == []


def test_system_check_refuses_flags_it_would_ignore(cli: Cli, tmp_path: Path) -> None:
    described = tmp_path / "system.json"
    described.write_text(json.dumps({"division": "open", "submitter": "Acme"}))
    result = cli("system", "--check", described, "--out", tmp_path / "x.json",
                 "--status", "preview")
    assert result.code == 2
    assert "would ignore --status, --out" in result.err
    assert not (tmp_path / "x.json").exists()


def test_submission_check_writes_no_summary_csv_unless_asked(cli: Cli,
                                                             tmp_path: Path) -> None:
    root = build_tree(tmp_path / "tree")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    result = cli("submission", "check", root, "--round", "v6.1")
    assert result.code == 0, result.text[-3000:]
    assert "SUMMARY: submission looks OK" in result.out and "summary:" not in result.out
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # untouched
    csv_file = tmp_path / "summary.csv"
    result = cli("submission", "check", root, "--round", "v6.1", "--csv", csv_file)
    assert result.code == 0 and f"summary: {csv_file}" in " ".join(result.out.split())
    assert csv_file.read_text().startswith("Organization,Availability,")
    payload = json.loads(cli("submission", "check", root, "--json").out)
    assert payload["summary_csv"] is None
