"""`pipeline image`: build the repository's Containerfile with podman, buildah or docker.

:func:`build_command` is the builder's command line (pure: no builder needed);
:func:`find_builder` says which builder runs it; :func:`run_build` runs it, handing each
line of the builder's output to a callback, and raises :class:`ImageBuildError` with the
last lines when the build fails.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlperf_pilot.errors import ConfigError, MlperfPilotError
from mlperf_pilot.pipelines.options import CONTAINERFILE, default_image
from mlperf_pilot.vocab import Device

BUILDERS: tuple[str, ...] = ("podman", "buildah", "docker")
TAIL_LINES = 20


class BuilderNotFoundError(ConfigError):
    """The image builder asked for (or any of them) is not installed."""


class ImageBuildError(MlperfPilotError):
    """The builder ran and failed; ``last_lines`` is the end of what it printed."""

    def __init__(self, message: str, hint: str | None = None,
                 last_lines: Sequence[str] = ()) -> None:
        super().__init__(message, hint)
        self.last_lines = list(last_lines)


@dataclass(frozen=True)
class ImageBuild:
    """What to build: the Containerfile's build arguments and the builder's options."""

    builder: str = "podman"
    context: Path = Path(".")
    containerfile: Path | None = None  # default: <context>/Containerfile
    tag: str | None = None  # default: localhost/mlperf-pilot:<version>[-cuda]
    cuda: bool = False
    base_image: str | None = None  # default: the Containerfile's BASE_IMAGE
    build_args: tuple[str, ...] = ()  # more KEY=VALUE build arguments
    builder_args: tuple[str, ...] = field(default=())  # passed to the builder as they are

    @property
    def image_tag(self) -> str:
        return self.tag or default_image(Device.CUDA if self.cuda else Device.CPU)

    @property
    def file(self) -> Path:
        return self.containerfile or self.context / CONTAINERFILE


def build_command(build: ImageBuild) -> list[str]:
    """The builder's command line: ``podman build`` / ``buildah bud`` / ``docker build``
    with the file, the tag, ``CUDA=0|1``, ``BASE_IMAGE`` when given, the other build
    arguments, the builder's own arguments, then the context."""
    if build.builder not in BUILDERS:
        raise ConfigError(f"unknown image builder {build.builder!r}",
                          hint=f"use one of: {', '.join(BUILDERS)}")
    for item in build.build_args:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--build-arg {item!r} is not KEY=VALUE",
                              hint="write it as --build-arg KEY=VALUE")
        if key in ("CUDA", "BASE_IMAGE"):
            raise ConfigError(f"--build-arg {key} has its own option",
                              hint="use --cuda" if key == "CUDA" else "use --base-image")
    argv = [build.builder, "bud" if build.builder == "buildah" else "build",
            "-f", str(build.file), "-t", build.image_tag,
            "--build-arg", f"CUDA={1 if build.cuda else 0}"]
    if build.base_image:
        argv += ["--build-arg", f"BASE_IMAGE={build.base_image}"]
    for item in build.build_args:
        argv += ["--build-arg", item]
    argv += list(build.builder_args)
    argv.append(str(build.context))
    return argv


def shown(argv: Sequence[str]) -> str:
    """The command as a shell would take it (``--dry-run`` prints this)."""
    return shlex.join(argv)


def check_context(build: ImageBuild) -> None:
    """The Containerfile exists (an installed mlperf-pilot has none: run it in the
    repository)."""
    if not build.file.is_file():
        raise ConfigError(f"no {build.file.name} at {build.file}",
                          hint="run it in the mlperf-pilot repository (its Containerfile is "
                          "at the root), or give --context DIR / --file FILE")


def find_builder(name: str | None) -> str:
    """The builder to use: ``name`` when installed, else (no name) the first of podman,
    buildah, docker that is; :class:`BuilderNotFoundError` naming what is missing."""
    if name is not None:
        if name not in BUILDERS:
            raise ConfigError(f"unknown image builder {name!r}",
                              hint=f"use one of: {', '.join(BUILDERS)}")
        if shutil.which(name) is None:
            others = [b for b in BUILDERS if b != name]
            raise BuilderNotFoundError(
                f"{name} is not installed (not on PATH)",
                hint=f"install {name} (Debian: apt-get install {name}), or use "
                     f"--builder {'|'.join(others)}")
        return name
    for candidate in BUILDERS:
        if shutil.which(candidate) is not None:
            return candidate
    raise BuilderNotFoundError("no image builder is installed (podman, buildah or docker)",
                               hint="install podman (Debian: apt-get install podman)")


def run_build(argv: Sequence[str], on_line: Callable[[str], None]) -> None:
    """Run the builder, each output line (stdout and stderr together) to ``on_line``;
    :class:`ImageBuildError` with the last lines when it exits non-zero."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1)
    except OSError as exc:
        raise BuilderNotFoundError(f"cannot start {argv[0]}: {exc}",
                                   hint="check that the builder is installed") from exc
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            on_line(line)
    finally:
        proc.stdout.close()
        code = proc.wait()
    if code != 0:
        raise ImageBuildError(f"{argv[0]} failed building the image (exit {code})",
                              hint="see the builder's last lines above", last_lines=tail)


__all__ = ["BUILDERS", "BuilderNotFoundError", "ImageBuild", "ImageBuildError",
           "build_command", "check_context", "find_builder", "run_build", "shown"]
