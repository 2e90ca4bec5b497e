"""`pipeline image`: the builders' command lines (pure), `--dry-run`, a missing builder,
and the Containerfile's promises the render relies on (read from the file itself).

The image really built and the demo really run in it: tests/e2e/test_container_image.py
(marked container)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cli_runner import Cli
from mlperf_pilot import __version__
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.pipelines.image import ImageBuild, build_command, find_builder

REPO = Path(__file__).resolve().parents[2]


def test_podman_command_has_the_file_tag_cuda_base_and_context() -> None:
    argv = build_command(ImageBuild(builder="podman", context=Path("/src"), cuda=True,
                                    base_image="localhost/base:bookworm",
                                    build_args=("EXTRAS=demo",),
                                    builder_args=("--network=host",)))
    assert argv == ["podman", "build", "-f", "/src/Containerfile", "-t",
                    f"localhost/mlperf-pilot:{__version__}-cuda", "--build-arg", "CUDA=1",
                    "--build-arg", "BASE_IMAGE=localhost/base:bookworm",
                    "--build-arg", "EXTRAS=demo", "--network=host", "/src"]


def test_buildah_uses_bud_and_docker_build() -> None:
    buildah = build_command(ImageBuild(builder="buildah", tag="x:1"))
    docker = build_command(ImageBuild(builder="docker", tag="x:1"))
    assert buildah[:2] == ["buildah", "bud"] and docker[:2] == ["docker", "build"]
    # the default: the Containerfile's own BASE_IMAGE, CPU
    assert "--build-arg" in buildah and "CUDA=0" in buildah
    assert not any(a.startswith("BASE_IMAGE=") for a in buildah)
    assert buildah[-1] == "." and docker[buildah.index("-t") + 1] == "x:1"


def test_the_default_tags_are_the_images_pipeline_render_runs() -> None:
    from mlperf_pilot.pipelines.options import default_image
    from mlperf_pilot.vocab import Device

    assert ImageBuild().image_tag == default_image(Device.CPU)
    assert ImageBuild(cuda=True).image_tag == default_image(Device.CUDA)
    assert ImageBuild(cuda=True).image_tag.endswith("-cuda")


@pytest.mark.parametrize(("item", "why"), [("NOEQUALS", "KEY=VALUE"), ("CUDA=1", "--cuda"),
                                           ("BASE_IMAGE=x", "--base-image")])
def test_bad_build_args_are_config_errors(item: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_command(ImageBuild(build_args=(item,)))
    assert why in f"{caught.value.message} {caught.value.hint}"


def test_dry_run_prints_the_exact_command(cli: Cli) -> None:
    result = cli("pipeline", "image", "--dry-run", "--cuda", "--builder", "buildah",
                 "--tag", "quay.io/acme/mlperf-pilot:cuda", "--base-image", "debian:bookworm",
                 "--context", str(REPO))
    assert result.code == 0, result.text
    assert shlex.split(result.out.strip()) == [
        "buildah", "bud", "-f", str(REPO / "Containerfile"), "-t",
        "quay.io/acme/mlperf-pilot:cuda", "--build-arg", "CUDA=1",
        "--build-arg", "BASE_IMAGE=debian:bookworm", str(REPO)]


def test_a_missing_builder_is_one_line_naming_it_exit_2(cli: Cli, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder with no builder in it
    result = cli("pipeline", "image", "--builder", "podman", "--context", str(REPO))
    assert result.code == 2
    assert result.errors() == ["error: podman is not installed (not on PATH)"]
    assert "--builder buildah|docker" in result.hint_line()
    with pytest.raises(ConfigError, match="no image builder"):
        find_builder(None)


def test_a_context_without_containerfile_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("pipeline", "image", "--builder", "docker", "--context", str(tmp_path))
    assert result.code == 2 and "no Containerfile" in result.error_line()


def test_the_containerfile_keeps_what_the_render_relies_on() -> None:
    text = (REPO / "Containerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if not line.startswith("#")]
    assert lines.index(next(x for x in lines if x.startswith("ARG BASE_IMAGE="))) < \
        lines.index("FROM ${BASE_IMAGE}")
    assert "ARG CUDA=0" in lines
    user = next(x for x in lines if x.startswith("USER "))
    assert re.fullmatch(r"USER \d+(:\d+)?", user), "runAsNonRoot needs a numeric USER"
    assert 'ENTRYPOINT ["mlperf-pilot"]' in lines
    assert 'VOLUME ["/data/cache", "/data/results"]' in lines
    assert any("MLPERF_PILOT_CACHE=/data/cache" in x for x in lines)
    assert 'pip install --quiet ${index:+--extra-index-url "$index"} "torch==$TORCH_VERSION"' \
        in text  # torch pinned, before the project
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*"):][:1] == ["*"] and "!src/" in ignore  # .venv etc. out
