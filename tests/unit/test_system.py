"""System detection from fake /proc and /sys trees, and on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlperf_pilot.errors import ConfigError
from mlperf_pilot.submission.check import CheckOptions, system_findings
from mlperf_pilot.submission.rounds import common
from mlperf_pilot.submission.system import (
    NOT_DETECTED,
    SystemProbe,
    describe_system,
    load_overrides,
)

CPUINFO = "\n\n".join(
    f"processor\t: {i}\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
    f"physical id\t: {i // 4}\ncore id\t\t: {i % 4}\ncpu MHz\t\t: 2450.000"
    for i in range(8)) + "\n"


def fake_machine(root: Path) -> Path:
    (root / "proc").mkdir(parents=True)
    (root / "proc/cpuinfo").write_text(CPUINFO)
    (root / "proc/meminfo").write_text("MemTotal:       65841520 kB\nMemFree: 1 kB\n")
    cpu = root / "sys/devices/system/cpu/cpu0"
    (cpu / "cpufreq").mkdir(parents=True)
    (cpu / "cpufreq/cpuinfo_max_freq").write_text("3529000\n")
    for index, (level, kind, size) in enumerate([("1", "Data", "32K"), ("1", "Instruction",
                                                 "32K"), ("2", "Unified", "512K"),
                                                ("3", "Unified", "32768K")]):
        folder = cpu / "cache" / f"index{index}"
        folder.mkdir(parents=True)
        (folder / "level").write_text(level + "\n")
        (folder / "type").write_text(kind + "\n")
        (folder / "size").write_text(size + "\n")
    for dev, sectors, rotational in (("nvme0n1", 1953525168, "0"), ("sda", 3907029168, "1"),
                                     ("loop0", 100, "0")):
        (root / f"sys/block/{dev}/queue").mkdir(parents=True)
        (root / f"sys/block/{dev}/size").write_text(f"{sectors}\n")
        (root / f"sys/block/{dev}/queue/rotational").write_text(rotational + "\n")
    for nic, physical in (("eth0", True), ("lo", False), ("docker0", False)):
        (root / f"sys/class/net/{nic}").mkdir(parents=True)
        if physical:
            (root / f"sys/class/net/{nic}/device").mkdir()
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text('PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\n')
    return root


def gpu_runner(argv: list[str]) -> str | None:
    if argv[0] == "nvidia-smi":
        return "NVIDIA H100 80GB HBM3, 81559 MiB, 1980 MHz\n" * 2
    if argv[0] == "dmidecode":
        return ("Memory Device\n\tSize: 32 GB\n\tType: DDR5\n\tSpeed: 4800 MT/s\n"
                "Memory Device\n\tSize: 32 GB\n\tType: DDR5\n\tSpeed: 4800 MT/s\n")
    return None


def test_detection_reads_every_field_from_proc_and_sys(tmp_path: Path) -> None:
    probe = SystemProbe(fake_machine(tmp_path), runner=gpu_runner)
    data, still = describe_system(division="closed", submitter="Acme", system_name="Box",
                                  probe=probe, framework="onnxruntime 1.31.1")
    assert data["host_processor_model_name"] == "AMD EPYC 7763 64-Core Processor"
    assert data["host_processors_per_node"] == "2" and data["host_processor_core_count"] == "4"
    assert data["host_processor_frequency"] == "3529 MHz"
    assert data["host_processor_caches"] == "L1d 32K, L1i 32K, L2 512K, L3 32768K"
    assert data["host_memory_capacity"] == "63 GB"
    assert data["host_memory_configuration"] == "2x 32 GB DDR5 4800 MT/s"
    assert data["host_storage_capacity"] == "3001 GB"  # (1953525168 + 3907029168) x 512 B
    assert data["host_storage_type"] == "HDD/NVMe"
    assert data["host_network_card_count"] == "1"
    assert data["accelerators_per_node"] == "2"
    assert data["accelerator_model_name"] == "NVIDIA H100 80GB HBM3"
    assert data["accelerator_memory_capacity"] == "81559 MiB"
    assert data["operating_system"].startswith("Ubuntu 24.04 LTS (kernel ")
    # no file tells the cooling, and nvidia-smi does not tell the memory configuration
    assert still == ["accelerator_memory_configuration", "cooling"]
    assert set(common().system_required_fields) <= set(data)


def test_what_cannot_be_read_is_marked_and_listed(tmp_path: Path) -> None:
    probe = SystemProbe(tmp_path, runner=lambda argv: None)
    data, still = describe_system(division="open", submitter="Acme", system_name="Box",
                                  probe=probe)
    assert data["host_processor_model_name"] == NOT_DETECTED
    assert "host_processor_model_name" in still and "host_memory_capacity" in still
    assert data["accelerators_per_node"] == "0" and data["accelerator_model_name"] == "N/A"


def test_overrides_win_and_fill(tmp_path: Path) -> None:
    file = tmp_path / "system.yaml"
    file.write_text("cooling: liquid\nhost_memory_configuration: 8x 16GB DDR4\n"
                    "system_type_detail: workstation\n")
    overrides = load_overrides(file)
    data, still = describe_system(division="open", submitter="Acme", system_name="Box",
                                  probe=SystemProbe(fake_machine(tmp_path / "m"),
                                                    runner=lambda a: None),
                                  overrides=overrides)
    assert data["cooling"] == "liquid" and data["system_type_detail"] == "workstation"
    assert "cooling" not in still
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_overrides(bad)


def test_this_machine(tmp_path: Path) -> None:
    data, _ = describe_system(division="open", submitter="Acme", system_name="Box")
    assert data["host_processor_core_count"] not in ("", NOT_DETECTED)
    assert data["host_memory_capacity"].endswith("GB")
    found = system_findings(data, "open", "Acme", CheckOptions())
    assert not [f for f in found if f.is_error], [f.message for f in found]
    json.dumps(data)  # serializable as written


def test_system_check_rules() -> None:
    data, _ = describe_system(division="closed", submitter="Acme", system_name="Box",
                              status="available")
    data["status"] = "final"
    data["system_type"] = "phone"
    data["division"] = "open"
    rules = {f.rule for f in system_findings(data, "closed", "Other", CheckOptions())
             if f.is_error}
    assert rules == {"system.status", "system.type", "system.division", "system.submitter"}
