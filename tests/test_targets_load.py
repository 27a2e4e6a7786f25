"""Targets are data: every shipped TOML loads; bad files fail naming the file and the field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.cli import main
from toolkit.errors import EdgetkError
from toolkit.hil.ports import match_ports
from toolkit.targets import fallback_chain, get_target, load_target_file, load_targets

SHIPPED = {"qemu-m4", "qemu-m7", "host-sim", "nucleo-l4r5zi", "linux-local"}


def test_shipped_targets_load_with_their_facts():
    t = load_targets()
    assert SHIPPED <= set(t)
    assert t["nucleo-l4r5zi"].clock_hz == 120_000_000 and "0483:374b" in t["nucleo-l4r5zi"].usb_ids
    assert t["qemu-m4"].emulator.command[0] == "qemu-system-arm" and "shift=0" in t["qemu-m4"].emulator.command
    assert t["linux-local"].runtime == "onnxruntime"


def test_fallback_chain_board_emulator_host():
    assert [s.name for s in fallback_chain("nucleo-l4r5zi")] == ["nucleo-l4r5zi", "qemu-m4", "host-sim"]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


BASE = """name = "x"
description = "d"
kind = "qemu"
core = "cortex-m4"
clock_hz = 1
flash_bytes = 1
ram_bytes = 1
runtime = "generated-c"
[build]
port = "qemu-mps2"
cc = "arm-none-eabi-gcc"
[emulator]
command = ["qemu-system-arm"]
"""


@pytest.mark.parametrize("edit, field, words", [
    (("clock_hz = 1", "clock_hz = \"fast\""), "clock_hz", "expected int"),
    (("kind = \"qemu\"", "kind = \"fpga\""), "kind", "not one of"),
    (("ram_bytes = 1", "ram_byts = 1"), "ram_byts", "did you mean 'ram_bytes'"),
    (("cc = \"arm-none-eabi-gcc\"", "cc = \"gcc\"\ncflgs = []"), "build.cflgs", "did you mean 'build.cflags'"),
    (("name = \"x\"", "name = \"y\""), "name", "differs from the file name"),
    (("[emulator]\ncommand = [\"qemu-system-arm\"]", ""), "emulator", "needs an [emulator]"),
])
def test_validation_errors_name_file_and_field(tmp_path, edit, field, words):
    p = _write(tmp_path, "x", BASE.replace(*edit))
    with pytest.raises(EdgetkError) as e:
        load_target_file(p)
    assert str(p) in str(e.value) and repr(field) in str(e.value) and words in str(e.value)


def test_base_is_valid_and_unknown_target_suggests(tmp_path):
    _write(tmp_path, "x", BASE)
    assert load_targets(tmp_path)["x"].kind == "qemu"
    with pytest.raises(EdgetkError, match="did you mean 'qemu-m"):
        get_target("qemu-m5")


def test_ports_matched_to_boards_by_usb_id():
    rows = [("/dev/ttyACM0", "0483:374B", "STM32 STLink"), ("/dev/ttyUSB0", "10c4:ea60", "CP2102"), ("/dev/ttyS0", "", "n/a")]
    ports = match_ports(rows, load_targets())
    assert ports[0].targets == ("nucleo-h743zi", "nucleo-l4r5zi") and "ST-LINK" in ports[0].known_as  # one ST-LINK id, two NUCLEOs
    assert ports[1].targets == () and "CP210x" in ports[1].known_as
    assert ports[2].known_as == ""


def test_targets_and_ports_commands(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SHIPPED)
    assert main(["ports", "--json"]) == 0
    ports = json.loads(capsys.readouterr().out)
    assert isinstance(ports, list) and all({"device", "targets", "known_as"} <= set(p) for p in ports)
