"""The CLI entry point, `edgetk doctor`, and the atomic-write helpers every stage relies on."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.fsio import atomic_dir, atomic_write_json, sha256_file

EDGETK = [sys.executable, "-m", "toolkit"]


def test_help_lists_the_spine_commands():
    out = subprocess.run([*EDGETK, "--help"], capture_output=True, text=True, check=True).stdout
    listed = {ln.split()[0] for ln in out.splitlines() if ln.startswith("    ") and not ln.startswith("     ")}
    # a module named after a Python keyword carries a trailing underscore (import_.py -> `edgetk import`)
    # and a command with a hyphen lives in a module with an underscore (distill_data.py -> `edgetk distill-data`)
    modules = {p.stem.rstrip("_").replace("_", "-") for p in (Path(__file__).parents[1] / "toolkit" / "commands").glob("*.py")
               if p.stem != "__init__"}
    assert {"doctor", "demo"} <= listed and listed == modules  # one module per command, each registered


def test_doctor_json_reports_tools_as_found_on_path():
    proc = subprocess.run([*EDGETK, "doctor", "--json"], capture_output=True, text=True, check=True)
    report = json.loads(proc.stdout)
    for tool in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm"):
        assert (report["tools"][tool] is not None) == (shutil.which(tool) is not None)
    assert report["packages"]["torch"].startswith("2.13.0")


def test_unknown_command_fails_with_usage():
    proc = subprocess.run([*EDGETK, "frobnicate"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_atomic_dir_leaves_nothing_when_the_block_fails(tmp_path: Path):
    target = tmp_path / "bundle"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "half.onnx").write_bytes(b"x" * 10)
            raise RuntimeError("export failed midway")
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_dir_replaces_an_old_folder_whole(tmp_path: Path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with atomic_dir(target) as d:
        atomic_write_json(d / "manifest.json", {"a": 1})
    assert sorted(os.listdir(target)) == ["manifest.json"]
    assert json.loads((target / "manifest.json").read_text()) == {"a": 1}
    assert sha256_file(target / "manifest.json") == hashlib.sha256((target / "manifest.json").read_bytes()).hexdigest()
    assert sorted(os.listdir(tmp_path)) == ["bundle"]  # no temporary folder left beside it


def test_doctor_says_what_stands_in_for_each_target():
    proc = subprocess.run([*EDGETK, "doctor", "--json"], capture_output=True, text=True, check=True)
    report = json.loads(proc.stdout)
    targets = report["targets"]
    assert targets["linux-local"].startswith("runs here")
    assert targets["host-sim"] == ("host simulator" if shutil.which("gcc") else "analytic estimate only")
    emulated = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
    assert targets["qemu-m4"] == ("emulated (QEMU)" if emulated else "absent: host-sim stands in (host simulator)")
    stlink = any(p["vid_pid"].lower() in ("0483:374b", "0483:374e", "0483:3752", "0483:3753") for p in report["serial_ports"])
    assert targets["nucleo-l4r5zi"].startswith("real board" if stlink else "absent: ")


def test_a_missing_tool_names_the_package_that_installs_it():
    from toolkit.errors import EdgetkError
    from toolkit.tools import install_hint, require_tool

    with pytest.raises(EdgetkError, match=r"arm-none-eabi-nosuchtool not found \(needed to flash\)") as e:
        require_tool("arm-none-eabi-nosuchtool", "flash")
    assert e.value.fix == "apt-get install gcc-arm-none-eabi"
    assert install_hint("arm-none-eabi-gcc") == "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
    assert require_tool("sh") == shutil.which("sh")
