"""What a reviewer reads in a generated submission, through the CLI: the code folder holds
the harness source and says where it comes from (a real commit, or the exact wheel), each
result's README gives its command without this machine's paths, and a closed-division
refusal lists every broken rule, an unverified model among them.

The results come from a real run: the resnet50 card with a resnet50-shaped ONNX model of
the tests (``--model-path``: never checked against the official checksum, so
``model_verified`` is false) on a 12-image ImageNet-layout folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlperf_pilot
from builders import make_imagenet_folder, make_resnet50_shaped
from mlperf_pilot.cli.main import main
from mlperf_pilot.results.records import read_record, write_record

SCENARIOS = ("Offline", "SingleStream", "MultiStream")
SYSTEM = "onnxruntime-cpu"
PACKAGE = Path(mlperf_pilot.__file__).resolve().parent
REPO = PACKAGE.parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real run's results (three scenarios, a model given by --model-path)."""
    root = tmp_path_factory.mktemp("contents")
    model = make_resnet50_shaped(root / "models" / "resnet50_v1.onnx")
    make_imagenet_folder(root / "imagenet", 12)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLPERF_PILOT_CACHE", str(root / "cache"))
        patch.chdir(root)
        code = main(["run", "--model", "resnet50", "--model-path", str(model),
                     "--dataset-path", str(root / "imagenet"), "--scenario",
                     ",".join(SCENARIOS), "--duration-ms", "300",
                     "--results-dir", str(root / "results")])
    assert code == 0
    yield root


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def generate(capsys: pytest.CaptureFixture[str], results: Path, out: Path, division: str,
             *extra: str) -> tuple[int, str, str]:
    return cli(capsys, "submission", "generate", "--division", division, "--submitter",
               "Acme", "--results-dir", str(results), "--out", str(out), "--no-check", *extra)


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(PACKAGE), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _copy_results(run_dir: Path, tmp_path: Path) -> Path:
    results = tmp_path / "results"
    shutil.copytree(run_dir / "results", results)
    return results


def _nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not Path(str(out) + "_logs").exists()


def test_code_folder_holds_the_harness_source_and_names_the_commit(
        capsys: pytest.CaptureFixture[str], run_dir: Path, tmp_path: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("the package does not run from a git checkout here")
    code, _, err = generate(capsys, run_dir / "results", tmp_path / "sub", "open")
    assert code == 0, err
    root = tmp_path / "sub/open/Acme"
    readme = (root / "src/resnet/README.md").read_text()
    assert f"commit `{_git('rev-parse', 'HEAD')}`" in readme
    assert "pip install mlperf-pilot==" not in readme
    assert "../mlperf-pilot" in readme
    dirty = bool(_git("status", "--porcelain", "--", "."))
    assert ("differed from that commit" in readme) == dirty
    # the package source as it ran: every .py and YAML file, byte for byte, no caches
    code_dir = root / "src/mlperf-pilot"
    expected = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
                      if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts)
    copied = sorted(p.relative_to(code_dir / "mlperf_pilot").as_posix()
                    for p in (code_dir / "mlperf_pilot").rglob("*") if p.is_file())
    assert copied == expected
    assert "catalog/models/resnet50.yaml" in copied and "cli/main.py" in copied
    manifest = (code_dir / "SOURCE.md").read_text()
    for rel in ("cli/main.py", "catalog/models/resnet50.yaml"):
        sha = hashlib.sha256((PACKAGE / rel).read_bytes()).hexdigest()
        assert f"| `mlperf_pilot/{rel}` | {(PACKAGE / rel).stat().st_size} | `{sha}` |" \
            in manifest
    assert _git("rev-parse", "HEAD") in manifest


def test_result_readmes_carry_no_local_paths(capsys: pytest.CaptureFixture[str],
                                             run_dir: Path, tmp_path: Path) -> None:
    code, _, err = generate(capsys, run_dir / "results", tmp_path / "sub", "open")
    assert code == 0, err
    readmes = sorted((tmp_path / "sub/open/Acme/results").glob(f"{SYSTEM}/*/*/README.md"))
    assert len(readmes) == len(SCENARIOS)
    for readme in readmes:
        text = readme.read_text()
        assert str(run_dir) not in text and str(tmp_path) not in text, text
        assert not re.search(r"(?<![\w<])/(tmp|root|home|work)/", text), text
        command = text.split("```")[1].strip()
        assert command == (
            "mlperf-pilot run --model resnet50 --model-path <MODEL_FILE> --dataset-path "
            f"<IMAGENET_DIR> --scenario {','.join(SCENARIOS)} --duration-ms 300 "
            "--results-dir <RESULTS_DIR>"), command
        assert "model file verified: no" in text and "**Model not verified**" in text


def test_closed_refusal_lists_every_result_and_rule(capsys: pytest.CaptureFixture[str],
                                                    run_dir: Path, tmp_path: Path) -> None:
    results = _copy_results(run_dir, tmp_path)
    shutil.rmtree(results / SYSTEM / "resnet50" / "MultiStream")  # a required scenario
    record_path = results / SYSTEM / "resnet50" / "Offline" / "records" / "performance.json"
    record = read_record(record_path)  # as an interrupted run would have left it
    record.status, record.reasons = "FAILED", ["interrupted by SIGINT"]
    write_record(record, record_path)
    out = tmp_path / "closed"
    code, _, err = generate(capsys, results, out, "closed")
    assert code == 1
    assert "Traceback" not in err
    flat = " ".join(err.split())
    error = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and "nothing written" in error[0]
    for rule in ("generate.records", "closed.model-verified", "closed.scenarios"):
        assert rule in error[0]
        assert f"[{rule}]" in flat
    for result in (f"{SYSTEM}/resnet50/Offline", f"{SYSTEM}/resnet50/SingleStream"):
        assert f"{result}:" in err
    assert flat.count("[closed.model-verified]") == 2  # one per result
    assert "lacks MultiStream" in flat and "the performance run is FAILED" in flat
    hint = [ln for ln in err.splitlines() if ln.startswith("hint:")]
    assert len(hint) == 1 and "--allow-unverified-model" in hint[0] \
        and "--include-invalid" in hint[0]
    _nothing_written(out)


def test_an_unverified_model_is_refused_for_closed_unless_allowed(
        capsys: pytest.CaptureFixture[str], run_dir: Path, tmp_path: Path) -> None:
    results = run_dir / "results"
    code, _, err = generate(capsys, results, tmp_path / "refused", "closed")
    assert code == 1
    flat = " ".join(err.split())
    assert flat.count("[closed.model-verified]") == len(SCENARIOS)
    assert "never checked against the official checksum" in flat
    assert "cache add resnet50 FILE" in flat and "--allow-unverified-model" in flat
    _nothing_written(tmp_path / "refused")

    code, out, err = generate(capsys, results, tmp_path / "allowed", "closed",
                              "--allow-unverified-model")
    assert code == 0, err
    assert f"wrote {len(SCENARIOS)} result(s)" in out
    readme = tmp_path / f"allowed/closed/Acme/results/{SYSTEM}/resnet/Offline/README.md"
    assert "packaged with `--allow-unverified-model`" in readme.read_text()

    code, _, err = generate(capsys, results, tmp_path / "open", "open")
    assert code == 0, err  # the open division takes it


def test_results_of_an_older_version_are_not_refused_for_an_unknown_check(
        capsys: pytest.CaptureFixture[str], run_dir: Path, tmp_path: Path) -> None:
    results = _copy_results(run_dir, tmp_path)
    for scenario in SCENARIOS:  # written before model_verified existed
        folder = results / SYSTEM / "resnet50" / scenario
        for path in (folder / "records").glob("*.json"):
            data = json.loads(path.read_text())
            data.pop("model_verified", None)
            path.write_text(json.dumps(data))
        spec = json.loads((folder / "run_spec.json").read_text())
        spec["resolved"].pop("model_verified", None)
        (folder / "run_spec.json").write_text(json.dumps(spec))
    code, _, err = generate(capsys, results, tmp_path / "sub", "closed")
    assert code == 0, err
    readme = (tmp_path / f"sub/closed/Acme/results/{SYSTEM}/resnet/Offline/README.md")
    assert "model file verified: not recorded" in readme.read_text()


def test_installed_from_a_wheel_the_src_readme_names_it(run_dir: Path,
                                                        tmp_path: Path) -> None:
    """Not a checkout: the wheel's name, sha256 and its RECORD's sha256 are named."""
    build = tmp_path / "build"
    build.mkdir()
    shutil.copytree(PACKAGE, build / "src" / "mlperf_pilot",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, build / name)
    made = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(tmp_path / "dist"), str(build)], capture_output=True,
                          text=True, timeout=300, check=False)
    if made.returncode != 0:  # hatchling comes from the package index
        pytest.skip(f"cannot build the wheel here: {made.stderr.strip()[-300:]}")
    wheel = next((tmp_path / "dist").glob("mlperf_pilot-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-m", "mlperf_pilot", "submission", "generate",
                           "--division", "open", "--submitter", "Acme", "--results-dir",
                           str(run_dir / "results"), "--out", str(tmp_path / "sub"),
                           "--no-check"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    readme = (tmp_path / "sub/open/Acme/src/resnet/README.md").read_text()
    record = next(target.glob("mlperf_pilot-*.dist-info")) / "RECORD"
    assert hashlib.sha256(record.read_bytes()).hexdigest() in readme
    assert wheel.name in readme
    assert f"sha256={hashlib.sha256(wheel.read_bytes()).hexdigest()}" in readme
    assert "pip install mlperf-pilot==" not in readme and str(tmp_path) not in readme
    assert "commit `" not in readme  # not a checkout
    assert (tmp_path / "sub/open/Acme/src/mlperf-pilot/mlperf_pilot/cli/main.py").is_file()
