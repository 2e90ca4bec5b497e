"""Files that ship inside packages: Python distributions and Debian packages.

The built-in demo uses real photos and weights that come from package registries only:
files inside installed Python packages (found with importlib, without importing the
package), and files inside Debian packages — used in place when the package is
installed, else fetched with ``apt-get download`` (no root needed) and extracted with
``dpkg-deb`` into the asset cache. Where apt is not available the caller gets a reason
and carries on with what it has.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

from mlperf_pilot.assets.cache import AssetCache, BuildResult, CacheEntry
from mlperf_pilot.errors import AssetError
from mlperf_pilot.progress import NULL_PROGRESS, Progress

APT_TIMEOUT_S = 600


def python_package_dir(package: str) -> Path | None:
    """The folder of an installed import package, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def python_package_file(package: str, relative: str) -> Path | None:
    folder = python_package_dir(package)
    if folder is None:
        return None
    path = folder / relative
    return path if path.is_file() else None


def debian_tools_missing() -> str | None:
    """Why Debian packages cannot be fetched here, or None if they can."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            return f"{tool} is not available (not a Debian-based system)"
    return None


def fetch_debian_files(
    cache: AssetCache, package: str, paths: Iterable[str], *,
    progress: Progress = NULL_PROGRESS,
) -> tuple[CacheEntry, bool]:
    """Fetch ``package`` with apt-get download and keep only ``paths`` (absolute paths
    inside the package) in a cache entry; returns (entry, built_now). The progress task
    opens only when the package is really fetched (not for a cached entry)."""
    wanted = sorted({p.lstrip("/") for p in paths})
    recipe = {"debian_package": package, "files": wanted}

    def build(folder: Path) -> BuildResult:
        work = folder / ".deb"
        work.mkdir()
        with progress.task(f"fetching Debian package {package}"):
            deb = _apt_download(package, work)
            version = _deb_version(deb)
            _extract_members(deb, wanted, folder)
        shutil.rmtree(work)
        return BuildResult(
            main=None, source=f"debian:{package}={version}",
            meta={"package": package, "version": version, "files": wanted},
        )

    # the name says which files: two demo sets take different photos of one package
    stems = [Path(w).stem for w in wanted]
    shown = "+".join(stems[:3]) + (f"+{len(stems) - 3} more" if len(stems) > 3 else "")
    return cache.get_or_build("download", f"debian-{package}-{shown}", recipe, build)


def _apt_download(package: str, work: Path) -> Path:
    try:
        proc = subprocess.run(
            ["apt-get", "download", package], cwd=work, capture_output=True, text=True,
            timeout=APT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AssetError(f"apt-get download {package} failed: {exc}") from exc
    debs = sorted(work.glob("*.deb"))
    if proc.returncode != 0 or not debs:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        reason = last[-1] if last else f"exit code {proc.returncode}"
        raise AssetError(
            f"apt-get download {package} failed: {reason}",
            hint="check that the Debian package index is reachable (apt-get update)",
        )
    return debs[0]


def _deb_version(deb: Path) -> str:
    proc = subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Version"], capture_output=True, text=True,
        check=False,
    )
    return proc.stdout.strip() or "unknown"


def _extract_members(deb: Path, wanted: list[str], dest: Path) -> None:
    """Stream the package's data tarball and keep only the wanted regular files."""
    proc = subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    found: set[str] = set()
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name in wanted and member.isfile():
                    member.name = name
                    tar.extract(member, dest, filter="data")
                    found.add(name)
    except tarfile.TarError as exc:
        raise AssetError(f"cannot read the contents of {deb.name}: {exc}") from exc
    finally:
        proc.stdout.close()
        proc.wait()
    missing = [w for w in wanted if w not in found]
    if missing:
        raise AssetError(
            f"{deb.name} does not contain {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            hint="the Debian package version differs from the one the catalog expects",
        )
