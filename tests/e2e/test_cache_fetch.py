"""`cache fetch`: a run's model and dataset into the cache, verified, without a run (the
pipelines' asset step); a second fetch finds everything cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_runner import Cli


def test_fetch_then_everything_is_cached(cli: Cli, tmp_path: Path, colour_imagenet: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.delenv("MLPERF_PILOT_CACHE", raising=False)
    assert cli("cache", "add", "imagenet", colour_imagenet, "--cache-dir", cache).code == 0
    first = cli("cache", "fetch", "--model", "resnet50", "--backend", "null", "--count", "8",
                "--cache-dir", cache)
    assert first.code == 0, first.err
    assert "8 samples preprocessed" in first.out and f"cache: {cache}" in first.out
    listed = cli("cache", "list", "--json", "--cache-dir", cache)
    assert '"kind": "prepared"' in listed.out or '"kind": "dataset"' in listed.out
    before = sorted(p.relative_to(cache) for p in cache.rglob("*"))
    again = cli("cache", "fetch", "--model", "resnet50", "--backend", "null", "--count", "8",
                "--cache-dir", cache)
    assert again.code == 0 and sorted(p.relative_to(cache) for p in cache.rglob("*")) == before


def test_fetch_refuses_what_run_refuses(cli: Cli, tmp_path: Path) -> None:
    result = cli("cache", "fetch", "--model", "no-such-model", "--cache-dir", tmp_path)
    assert result.code == 2 and "no-such-model" in result.err
