"""Every optional package the code asks for is installed by the extra its error message
names, so `pip install 'mlperf-pilot[X]'` really fixes a MissingDependencyError."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlperf_pilot.backends import backend_class, backend_names

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "mlperf_pilot"
# _require("module", "package", "extra", ...) in the asset builders and converters
REQUIRE = re.compile(r'_require\(\s*"([\w.]+)",\s*"([^"]+)",\s*"(\w+)"')


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _extras() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    return {extra: core | {_name(r) for r in reqs}
            for extra, reqs in project["optional-dependencies"].items()}


def test_every_required_package_is_in_the_extra_named_for_it() -> None:
    extras = _extras()
    found = []
    for path in SOURCE.rglob("*.py"):
        for module, package, extra in REQUIRE.findall(path.read_text()):
            found.append(module)
            assert extra in extras, f"{path.name}: unknown extra {extra!r} for {module}"
            assert _name(package) in extras[extra], f"{path.name}: {package} not in [{extra}]"
    # the ONNX export needs the onnx package: the demo extra must bring it
    assert {"torch", "onnx", "efficientnet_lite_pytorch"} <= set(found)


@pytest.mark.parametrize("name", [n for n in backend_names() if n != "null"])
def test_every_backend_extra_installs_the_backend(name: str) -> None:
    cls = backend_class(name)
    extras = _extras()
    names = {_name(p) for p in (cls.package, *cls.alternatives) if p}
    if cls.extra is None:  # a core dependency
        assert names & set.intersection(*extras.values())
    else:
        assert names & extras[cls.extra], (name, cls.extra)
        assert names & extras["backends"], f"[backends] does not install {name}"


def test_a_missing_onnx_package_is_a_clear_usage_error(tmp_path: Path) -> None:
    """The ONNX export without the onnx package: exit 2 and the extra to install, not an
    internal error from deep inside torch."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["onnx"] = None  # as if it were not installed
        from mlperf_pilot.cli.main import main
        sys.exit(main(["--cache-dir", {str(tmp_path / "cache")!r}, "run", "--mode",
                       "accuracy", "--scenario", "Offline", "--results-dir",
                       {str(tmp_path / "results")!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "onnx is not installed" in out and "mlperf-pilot[demo]" in out
    assert "internal error" not in out
