"""The system description: detect the machine, merge the user's overrides, check it.

Detection reads ``/proc`` and ``/sys`` under a root folder (``/`` normally; a fixture
folder in tests), ``/etc/os-release``, and ``nvidia-smi`` when it exists. Every field
the round requires is present in the JSON; fields that cannot be detected get a
visible placeholder and are listed by ``missing_details`` so the user fills them in an
override file (YAML or JSON), which wins over detection.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlperf_pilot.errors import ConfigError
from mlperf_pilot.results.provenance import package_versions
from mlperf_pilot.submission.rounds import common

NOT_DETECTED = "not detected (fill in the override file)"
CommandRunner = Callable[[list[str]], str | None]


def run_command(argv: list[str]) -> str | None:
    """Output of a command, or None if it is absent or fails."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass
class Detected:
    fields: dict[str, Any]
    undetected: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


class SystemProbe:
    """Reads the machine's facts from a filesystem root."""

    def __init__(self, root: Path = Path("/"), runner: CommandRunner = run_command) -> None:
        self.root = Path(root)
        self.runner = runner

    def _read(self, relative: str) -> str | None:
        try:
            return (self.root / relative).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    # ------------------------------------------------------------------------ CPU

    def cpuinfo(self) -> list[dict[str, str]]:
        text = self._read("proc/cpuinfo") or ""
        blocks = []
        for chunk in text.strip().split("\n\n"):
            entry = {}
            for line in chunk.splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    entry[key.strip()] = value.strip()
            if entry:
                blocks.append(entry)
        return blocks

    def cpu(self) -> dict[str, Any]:
        blocks = self.cpuinfo()
        model = next((b["model name"] for b in blocks if "model name" in b), None)
        sockets = {b.get("physical id", "0") for b in blocks} if blocks else set()
        cores = {(b.get("physical id", "0"), b.get("core id", str(i)))
                 for i, b in enumerate(blocks)}
        per_socket = len(cores) // max(1, len(sockets)) if cores else None
        return {"model": model, "sockets": len(sockets) or None, "cores_per_socket": per_socket,
                "threads": len(blocks) or None, "mhz": self.cpu_mhz(blocks)}

    def cpu_mhz(self, blocks: list[dict[str, str]]) -> float | None:
        max_khz = self._read("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        if max_khz and max_khz.strip().isdigit():
            return int(max_khz.strip()) / 1000
        mhz = next((b["cpu MHz"] for b in blocks if "cpu MHz" in b), None)
        try:
            return float(mhz) if mhz else None
        except ValueError:
            return None

    def caches(self) -> str | None:
        base = self.root / "sys/devices/system/cpu/cpu0/cache"
        if not base.is_dir():
            return None
        parts = []
        for index in sorted(base.glob("index*")):
            level = self._read(str(index.relative_to(self.root) / "level"))
            kind = self._read(str(index.relative_to(self.root) / "type"))
            size = self._read(str(index.relative_to(self.root) / "size"))
            if level and kind and size:
                suffix = {"Data": "d", "Instruction": "i"}.get(kind.strip(), "")
                parts.append(f"L{level.strip()}{suffix} {size.strip()}")
        return ", ".join(parts) or None

    # ---------------------------------------------------------------------- memory

    def memory_gb(self) -> float | None:
        text = self._read("proc/meminfo") or ""
        match = re.search(r"^MemTotal:\s+(\d+)\s+kB", text, re.M)
        return int(match.group(1)) / 1024 / 1024 if match else None

    def memory_configuration(self) -> str | None:
        out = self.runner(["dmidecode", "-t", "memory"])
        if not out:
            return None
        sizes = re.findall(r"^\s*Size:\s*(\d+\s*[GM]B)", out, re.M)
        speeds = re.findall(r"^\s*Speed:\s*(\d+\s*MT/s)", out, re.M)
        kinds = re.findall(r"^\s*Type:\s*(DDR\w*|LPDDR\w*|HBM\w*)", out, re.M)
        if not sizes:
            return None
        speed = f" {speeds[0]}" if speeds else ""
        kind = f" {kinds[0]}" if kinds else ""
        return f"{len(sizes)}x {sizes[0]}{kind}{speed}"

    # --------------------------------------------------------------------- storage

    def storage(self) -> tuple[str | None, str | None]:
        """(capacity, type) of the block devices that are disks."""
        block = self.root / "sys/block"
        if not block.is_dir():
            return None, None
        total = 0
        kinds = set()
        for dev in sorted(block.iterdir()):
            if dev.name.startswith(("loop", "ram", "zram", "sr", "dm-", "md")):
                continue
            sectors = self._read(f"sys/block/{dev.name}/size")
            if not sectors or not sectors.strip().isdigit():
                continue
            total += int(sectors.strip()) * 512
            rotational = (self._read(f"sys/block/{dev.name}/queue/rotational") or "").strip()
            kinds.add("NVMe" if dev.name.startswith("nvme") else
                      "HDD" if rotational == "1" else "SSD")
        if not total:
            return None, None
        return f"{total / 1e9:.0f} GB", "/".join(sorted(kinds))

    # --------------------------------------------------------------------- network

    def network_cards(self) -> int | None:
        net = self.root / "sys/class/net"
        if not net.is_dir():
            return None
        return sum(1 for dev in net.iterdir() if dev.name != "lo" and (dev / "device").exists())

    # ---------------------------------------------------------------- accelerators

    def gpus(self) -> list[dict[str, str]]:
        out = self.runner(["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.sm",
                           "--format=csv,noheader"])
        gpus = []
        for line in (out or "").strip().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) >= 2:
                gpus.append({"name": parts[0], "memory": parts[1],
                             "clock": parts[2] if len(parts) > 2 else ""})
        return gpus

    # -------------------------------------------------------------------------- OS

    def operating_system(self) -> str:
        text = self._read("etc/os-release") or ""
        match = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', text, re.M)
        name = match.group(1) if match else platform.system()
        return f"{name} (kernel {platform.release()})"


def detect(probe: SystemProbe | None = None, *, framework: str | None = None) -> Detected:
    """Every field the system description needs, detected where readable."""
    probe = probe or SystemProbe()
    cpu = probe.cpu()
    memory = probe.memory_gb()
    capacity, storage_type = probe.storage()
    gpus = probe.gpus()
    nics = probe.network_cards()
    versions = package_versions()
    fields: dict[str, Any] = {
        "number_of_nodes": "1",
        "host_processor_model_name": cpu["model"],
        "host_processors_per_node": str(cpu["sockets"]) if cpu["sockets"] else None,
        "host_processor_core_count": str(cpu["cores_per_socket"]) if cpu["cores_per_socket"]
        else None,
        "host_processor_frequency": f"{cpu['mhz']:.0f} MHz" if cpu["mhz"] else None,
        "host_processor_caches": probe.caches(),
        "host_processor_interconnect": "",
        "host_memory_capacity": f"{memory:.0f} GB" if memory else None,
        "host_memory_configuration": probe.memory_configuration(),
        "host_storage_capacity": capacity,
        "host_storage_type": storage_type,
        "host_networking": "Ethernet" if nics else None,
        "host_networking_topology": "N/A",
        "host_network_card_count": str(nics) if nics is not None else None,
        "accelerators_per_node": str(len(gpus)),
        "accelerator_model_name": gpus[0]["name"] if gpus else "N/A",
        "accelerator_memory_capacity": gpus[0]["memory"] if gpus else "N/A",
        "accelerator_frequency": gpus[0]["clock"] if gpus else "",
        "accelerator_host_interconnect": "PCIe" if gpus else "N/A",
        "accelerator_interconnect": "N/A",
        "accelerator_interconnect_topology": "",
        "accelerator_memory_configuration": "N/A" if not gpus else None,
        "accelerator_on-chip_memories": "",
        "cooling": None,
        "hw_notes": "",
        "sw_notes": "",
        "framework": framework or " ".join(
            f"{name} {versions[name]}" for name in ("onnxruntime", "onnxruntime-gpu")
            if name in versions) or None,
        "operating_system": probe.operating_system(),
        "other_software_stack": ", ".join(
            [f"Python {sys.version.split()[0]}"]
            + [f"{name} {versions[name]}" for name in ("mlcommons-loadgen", "numpy", "mlperf-pilot")
               if name in versions]),
        "system_type_detail": "",
    }
    undetected = [key for key, value in fields.items() if value is None]
    for key in undetected:
        fields[key] = NOT_DETECTED
    return Detected(fields=fields, undetected=undetected)


def load_overrides(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"override file {path} does not exist", hint="check the path") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override file {path} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"override file {path} must hold a mapping of fields")
    return {str(k): "" if v is None else (v if isinstance(v, str) else str(v))
            for k, v in data.items()}


def describe_system(
    *, division: str, submitter: str, system_name: str, system_type: str = "edge",
    status: str = "available", overrides: Mapping[str, Any] | None = None,
    probe: SystemProbe | None = None, framework: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The system JSON (every required field) and the fields still needing the user."""
    detected = detect(probe, framework=framework)
    data: dict[str, Any] = {"division": division, "submitter": submitter, "status": status,
                            "system_name": system_name, "system_type": system_type}
    data.update(detected.fields)
    data.update(dict(overrides or {}))
    ordered = {key: data.get(key, "") for key in common().system_required_fields}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    still = [k for k, v in ordered.items() if v == NOT_DETECTED]
    return ordered, still


def write_system_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(data), indent=2) + "\n", encoding="utf-8")


def placeholder_fields(data: Mapping[str, Any]) -> list[str]:
    return [k for k, v in data.items() if v == NOT_DETECTED]


__all__ = ["NOT_DETECTED", "SystemProbe", "describe_system", "detect", "load_overrides",
           "placeholder_fields", "write_system_json"]
