"""The harness that produced a submission's results: where it came from, and its source.

The rules want the code that produced the results in the tree's code folder
(``src/`` from v6.0, ``code/`` up to v5.1). :func:`harness_origin` says what this
package is, as it can be proven: a commit of a git checkout (with its remote, and the
files that differ from the commit), or an installed distribution (name, version, the
sha256 of its RECORD, and what pip recorded of where it came from, PEP 610's
direct_url.json), or neither. :func:`copy_harness_source` copies the package's source
(``.py`` files and the YAML catalog and round files; no caches) into the tree with a
``SOURCE.md`` that says what it is and lists every file with its sha256.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlperf_pilot

DISTRIBUTION = "mlperf-pilot"
SOURCE_SUFFIXES = (".py", ".yaml", ".yml")
SOURCE_FOLDER = "mlperf-pilot"  # under the tree's code folder
MANIFEST = "SOURCE.md"


@dataclass(frozen=True)
class HarnessOrigin:
    """What the running mlperf-pilot is. ``kind``: ``checkout`` (a git work tree),
    ``distribution`` (installed files of a distribution) or ``unknown``."""

    kind: str
    version: str
    commit: str | None = None
    remote: str | None = None  # credentials removed; None: the checkout has no remote
    changed: tuple[str, ...] = ()  # package files that differ from the commit
    distribution: str | None = None  # name as installed
    record_sha256: str | None = None  # of the distribution's RECORD
    installed_from: str | None = None  # direct_url.json's url (a local file: its name only)
    installed_vcs: str | None = None  # direct_url.json's vcs_info (git, hg, ...)
    installed_commit: str | None = None  # direct_url.json's vcs_info
    archive_hash: str | None = None  # direct_url.json's archive_info hash


@dataclass
class CopiedSource:
    folder: Path
    files: list[tuple[str, int, str]] = field(default_factory=list)  # path, bytes, sha256

    @property
    def digest(self) -> str:
        """sha256 over the sorted file list (path and sha256 of each file)."""
        lines = "".join(f"{sha}  {path}\n" for path, _, sha in sorted(self.files))
        return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def package_dir() -> Path:
    return Path(mlperf_pilot.__file__).resolve().parent


def harness_origin(package: Path | None = None) -> HarnessOrigin:
    package = Path(package) if package is not None else package_dir()
    return _from_git(package) or _from_distribution(package) or HarnessOrigin(
        "unknown", mlperf_pilot.__version__)


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True,
                              text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    # only the end trimmed: a porcelain status line starts with a space
    return done.stdout.rstrip() if done.returncode == 0 else None


def _from_git(package: Path) -> HarnessOrigin | None:
    # tracked files only: a package installed into an ignored folder of some checkout
    # (a .venv inside the repository) is not that checkout's source
    if _git(package, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    commit = (_git(package, "rev-parse", "HEAD") or "").strip()
    if not commit:
        return None
    remote = (_git(package, "remote", "get-url", "origin") or "").strip() or None
    if remote is None:
        names = (_git(package, "remote") or "").split()
        remote = (_git(package, "remote", "get-url", names[0]) or "").strip() or None \
            if names else None
    status = _git(package, "status", "--porcelain", "--untracked-files=all", "--", ".") or ""
    paths = {line[3:].split(" -> ")[-1].strip('"') for line in status.splitlines()}
    changed = tuple(sorted(p for p in paths if p.endswith(SOURCE_SUFFIXES)))
    return HarnessOrigin("checkout", mlperf_pilot.__version__, commit=commit,
                         remote=_without_credentials(remote) if remote else None,
                         changed=changed)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def _from_distribution(package: Path) -> HarnessOrigin | None:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    init = (package / "__init__.py").resolve()
    if not any(Path(str(dist.locate_file(f))).resolve() == init for f in dist.files or ()):
        return None  # installed, but not the files that run (an editable install, a copy)
    records = [Path(str(dist.locate_file(f))) for f in dist.files or ()
               if f.name == "RECORD" and f.parent.name.endswith(".dist-info")]
    record = records[0].read_bytes() if records and records[0].is_file() else \
        (dist.read_text("RECORD") or "").encode("utf-8")
    origin = {"kind": "distribution", "version": dist.version,
              "distribution": dist.metadata["Name"],
              "record_sha256": hashlib.sha256(record).hexdigest()}
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        direct = None
    if isinstance(direct, dict) and isinstance(direct.get("url"), str):
        url = direct["url"]
        # a local file or folder: its name only (the path is this machine's)
        origin["installed_from"] = (Path(urlsplit(url).path).name if url.startswith("file:")
                                    else _without_credentials(url))
        vcs, archive = direct.get("vcs_info") or {}, direct.get("archive_info") or {}
        origin["installed_commit"] = vcs.get("commit_id")
        origin["installed_vcs"] = vcs.get("vcs")
        hashes = archive.get("hashes") or {}
        origin["archive_hash"] = (f"sha256={hashes['sha256']}" if "sha256" in hashes
                                  else archive.get("hash"))
    return HarnessOrigin(**origin)


def source_files(package: Path | None = None) -> list[Path]:
    """The package's source files, relative to the package folder (no caches)."""
    package = Path(package) if package is not None else package_dir()
    return sorted(p.relative_to(package) for p in package.rglob("*")
                  if p.is_file() and p.suffix in SOURCE_SUFFIXES
                  and "__pycache__" not in p.parts)


def copy_harness_source(folder: Path, origin: HarnessOrigin,
                        package: Path | None = None) -> CopiedSource:
    """Copy the package source to ``folder/mlperf_pilot/`` and write ``folder/SOURCE.md``."""
    package = Path(package) if package is not None else package_dir()
    copied = CopiedSource(Path(folder))
    target = copied.folder / package.name
    if target.exists():
        shutil.rmtree(target)
    for rel in source_files(package):
        data = (package / rel).read_bytes()
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        copied.files.append((f"{package.name}/{rel.as_posix()}", len(data),
                             hashlib.sha256(data).hexdigest()))
    (copied.folder / MANIFEST).write_text(_manifest(copied, origin), encoding="utf-8")
    return copied


def describe_origin(origin: HarnessOrigin) -> list[str]:
    """Markdown lines: what the harness is, as proven."""
    if origin.kind == "checkout":
        where = (f"the git repository {origin.remote}" if origin.remote else
                 "a local git checkout with no remote (the commit is not published)")
        lines = [f"- mlperf-pilot {origin.version}, commit `{origin.commit}` of {where}"]
        if origin.changed:
            shown = ", ".join(origin.changed[:12])
            more = f" and {len(origin.changed) - 12} more" if len(origin.changed) > 12 else ""
            lines.append(f"- the checkout differed from that commit in {len(origin.changed)} "
                         f"file(s): {shown}{more} (the copy of the source is what ran)")
        else:
            lines.append("- the package source was exactly that commit (no local changes)")
        return lines
    if origin.kind == "distribution":
        lines = [f"- the installed distribution {origin.distribution} {origin.version} "
                 f"(sha256 of its dist-info RECORD: `{origin.record_sha256}`)"]
        if origin.installed_from:
            lines.append(f"- installed from {origin.installed_from}"
                         + (f", commit `{origin.installed_commit}`"
                            if origin.installed_commit else "")
                         + (f", {origin.archive_hash}" if origin.archive_hash else ""))
        return lines
    return [f"- mlperf-pilot {origin.version}, neither a git checkout nor an installed "
            "distribution: the copy of its source here is the only record of what ran"]


def how_to_get(origin: HarnessOrigin, source: str) -> list[str]:
    """Markdown lines: how to get the same harness (``source``: the copied source's
    folder, relative to where the lines are read)."""
    if origin.kind == "checkout" and origin.remote and not origin.changed:
        return ["```", f"git clone {origin.remote} mlperf-pilot && cd mlperf-pilot",
                f"git checkout {origin.commit}", "./scripts/install", "```"]
    remote = origin.kind == "distribution" and "://" in (origin.installed_from or "")
    if remote and origin.installed_vcs and origin.installed_commit:
        return ["```", f"pip install '{origin.installed_vcs}+{origin.installed_from}"
                f"@{origin.installed_commit}'", "```"]
    if remote and origin.archive_hash:
        return ["```", f"pip install '{origin.installed_from}'   # {origin.archive_hash}",
                "```"]
    if origin.kind == "distribution" and origin.installed_from:
        return [f"The distribution was installed from a local {origin.installed_from}"
                + (f" ({origin.archive_hash})" if origin.archive_hash else "")
                + f", which no package index serves: use the source copied into `{source}` "
                f"(see its {MANIFEST}): put that folder on PYTHONPATH and run "
                "`python -m mlperf_pilot ...` in place of `mlperf-pilot ...`, with the "
                "dependencies listed there installed."]
    return [f"Use the source copied into `{source}` (see its {MANIFEST}): put its folder "
            "on PYTHONPATH and run `python -m mlperf_pilot ...` in place of `mlperf-pilot "
            "...`, with the dependencies listed there installed."]


def _manifest(copied: CopiedSource, origin: HarnessOrigin) -> str:
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    rows = [f"| `{path}` | {size} | `{sha}` |" for path, size, sha in sorted(copied.files)]
    needs = [f"- `{r}`" for r in requires if "extra ==" not in r] or \
        ["- (not recorded: see the pyproject.toml of the commit above)"]
    return "\n".join([
        "# mlperf-pilot: the harness source",
        "",
        "The Python package `mlperf_pilot` that ran the benchmarks of this submission: a "
        "harness around the official MLPerf LoadGen (`mlcommons-loadgen`). Its `.py` files "
        "and YAML files (model and dataset cards, round rules, compliance tests), copied "
        "from the package as it ran; no caches, no model or data files.",
        "",
        "## Where it comes from",
        "",
        *describe_origin(origin),
        f"- sha256 of the file list below: `{copied.digest}`",
        "",
        "## Dependencies (as the distribution declares them)",
        "",
        *needs,
        "",
        f"## Files ({len(copied.files)})",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
        *rows,
        "",
    ])


__all__ = ["CopiedSource", "HarnessOrigin", "copy_harness_source", "describe_origin",
           "harness_origin", "how_to_get", "source_files"]
