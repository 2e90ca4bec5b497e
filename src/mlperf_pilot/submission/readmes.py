"""The READMEs ``submission generate`` writes: one per result (the exact command, with
placeholders for what lives on the submitter's machine) and one per benchmark in the code
folder (how to get the harness that ran it).

A result's command comes from its run_spec.json (``resolved.command``). Paths in it are
this machine's: the model file and the data set become ``<MODEL_FILE>`` and
``<IMAGENET_DIR>`` (``<COCO_DIR>``, ``<OPENIMAGES_DIR>``) whatever they were, other path
flags (``--results-dir``, ``--config``, ``--targets-file``, ``--cache-dir``) and any other
word that is an absolute path become a placeholder only when absolute; every other word
stays as it was.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from mlperf_pilot.catalog import ModelCard
from mlperf_pilot.results.provenance import Provenance
from mlperf_pilot.submission.harness_source import (
    MANIFEST,
    HarnessOrigin,
    describe_origin,
    how_to_get,
)

MODEL_FILE = "<MODEL_FILE>"
DATASET_DIRS = {"imagenet": "<IMAGENET_DIR>", "coco": "<COCO_DIR>",
                "openimages": "<OPENIMAGES_DIR>"}
# path flags that are this machine's only when absolute
_PATH_FLAGS = {"--results-dir": "<RESULTS_DIR>", "--config": "<CONFIG_FILE>",
               "--targets-file": "<TARGETS_FILE>", "--cache-dir": "<CACHE_DIR>"}
_ABSOLUTE = re.compile(r"""(?:(?<=[\s('"=:,])|^)(?:/|~/)[^\s'"(),;]*""")


def _is_local(word: str) -> bool:
    return word.startswith(("/", "~"))


def _placeholder(flag: str, value: str, dataset_dir: str) -> str | None:
    if flag == "--model-path":
        return MODEL_FILE
    if flag == "--dataset-path":
        return dataset_dir
    if flag in _PATH_FLAGS and _is_local(value):
        return _PATH_FLAGS[flag]
    return None


def portable_command(command: str, dataset_layout: str) -> str:
    """``command`` with placeholders for the paths of this machine (see the module)."""
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: keep the words, still without local paths
        return scrub_paths(command, {})
    dataset_dir = DATASET_DIRS.get(dataset_layout, "<DATASET_DIR>")
    out: list[str] = []  # shell words, quoted; placeholders stay bare

    def word_of(text: str) -> str:
        return shlex.quote(text)

    i = 0
    while i < len(words):
        word = words[i]
        flag, eq, value = word.partition("=")
        if eq and flag.startswith("--") and (
                new := _placeholder(flag, value, dataset_dir)) is not None:
            out.append(f"{word_of(flag)}={new}")
        elif word.startswith("--") and i + 1 < len(words) and (
                new := _placeholder(word, words[i + 1], dataset_dir)) is not None:
            out += [word_of(word), new]
            i += 1
        elif out and out[-1] == "--set" and eq and (
                flag.endswith(("model_path", "dataset_path")) or _is_local(value)):
            new = MODEL_FILE if flag.endswith("model_path") else \
                dataset_dir if flag.endswith("dataset_path") else "<PATH>"
            out.append(f"{word_of(flag)}={new}")
        elif _is_local(word) and i > 0:
            out.append("<PATH>")
        elif i == 0 and "/" in word:
            out.append(word_of(word.rsplit("/", 1)[1]))  # .venv/bin/mlperf-pilot
        else:
            out.append(word_of(word))
        i += 1
    return " ".join(out)


def scrub_paths(text: str, known: dict[str, str]) -> str:
    """``text`` with each known path replaced by its placeholder, then any other
    absolute path by ``<PATH>``."""
    for path, placeholder in sorted(known.items(), key=lambda kv: -len(kv[0])):
        if path:
            text = text.replace(path, placeholder)
    return _ABSOLUTE.sub("<PATH>", text)


def result_readme(*, card: ModelCard, benchmark: str, scenario: str, system: str,
                  version: str, command: str, resolved: Provenance, dataset_layout: str,
                  notes: Iterable[str] = ()) -> str:
    """A result's README.md: the command that produced it, without this machine's paths."""
    dataset_dir = DATASET_DIRS.get(dataset_layout, "<DATASET_DIR>")
    known = {str(resolved.model_path or ""): MODEL_FILE,
             str(resolved.dataset_root or ""): dataset_dir}
    model = scrub_paths(resolved.model_source or "", known)
    dataset = scrub_paths(resolved.dataset_source or "", known)
    verified = {True: "yes, against the catalog's checksum",
                False: "no (not checked against the official checksum)",
                None: "not recorded"}[resolved.model_verified]
    backend = " ".join(x for x in (resolved.backend, resolved.backend_version) if x)
    lines = [
        f"# {benchmark} {scenario} on {system}", "",
        f"Produced with mlperf-pilot {version} (how to get it: the README.md of this "
        f"benchmark in the tree's code folder) by:", "",
        "```", portable_command(command, dataset_layout), "```", "",
        f"`{MODEL_FILE}` is your copy of the model file and `{dataset_dir}` your copy of "
        "the data set; the other arguments are as they were given.", "",
        f"- model: {card.title} ({card.name}){', ' + model if model else ''}",
        f"- model file verified: {verified}",
        f"- backend: {backend or 'not recorded'} on {resolved.device_in_use or 'not recorded'}",
        f"- dataset: {dataset or 'not recorded'}",
        "- LoadGen settings: see user.conf (mlperf.conf unchanged)",
    ]
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def source_readme(*, card: ModelCard, benchmark: str, origin: HarnessOrigin,
                  source: str) -> str:
    """The code folder's ``<benchmark>/README.md`` (``source``: the copied harness,
    relative to it)."""
    return "\n".join([
        f"# {card.title} ({benchmark})", "",
        "These results were produced with mlperf-pilot, a harness around the official "
        "MLPerf LoadGen (`mlcommons-loadgen`). Its source, as it ran, is in "
        f"`{source}` ({MANIFEST} there lists every file with its sha256).", "",
        "## The harness", "",
        *describe_origin(origin), "",
        "## Getting it", "",
        *how_to_get(origin, source), "",
        "## Running it", "",
        "Each result's README.md gives the command that produced it, with placeholders "
        f"for your copies of the model file (`{MODEL_FILE}`) and the data set "
        f"(`{DATASET_DIRS.get('imagenet')}`, `<COCO_DIR>`, `<OPENIMAGES_DIR>`).", "",
    ])


__all__ = ["portable_command", "result_readme", "scrub_paths", "source_readme"]
