"""NUCLEO-H743ZI (Cortex-M7, 2 MB flash): the target file loads with its facts, falls back to qemu-m7, and its
board port compiles and links into the board's memory map with arm-none-eabi-gcc."""
from __future__ import annotations

from conftest import require_tool
from toolkit.hil.adapters import make_target
from toolkit.paths import repo_dir
from toolkit.targets import fallback_chain, get_target, load_targets


def test_h743_target_loads_with_its_facts():
    t = load_targets()["nucleo-h743zi"]
    assert (t.kind, t.core, t.clock_hz, t.kernels) == ("board", "cortex-m7", 480_000_000, "dsp")
    assert t.flash_bytes == 2 * 1024 * 1024 and t.ram_bytes == 512 * 1024 and "0483:374b" in t.usb_ids
    assert t.cycles == () and t.cycles_per_instruction == 0.0, "no cycle model until one is measured"
    assert [s.name for s in fallback_chain("nucleo-h743zi")] == ["nucleo-h743zi", "qemu-m7", "host-sim"]


def test_h743_port_compiles(tmp_path):
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size"):
        require_tool(tool)
    spec = get_target("nucleo-h743zi")
    fw = make_target(spec, port="/dev/null").build(repo_dir("firmware_stubs") / "testmodel", tmp_path)
    assert fw.elf.is_file() and fw.bin.is_file() and fw.bin.stat().st_size > 1000
    assert 1000 < fw.flash_bytes < spec.flash_bytes and fw.static_ram_bytes + fw.stack_bytes < spec.ram_bytes
    vectors = fw.bin.read_bytes()[:8]
    sp, reset = int.from_bytes(vectors[:4], "little"), int.from_bytes(vectors[4:], "little")
    assert 0x24000000 < sp <= 0x24000000 + spec.ram_bytes, "stack top in the AXI SRAM"
    assert 0x08000000 < reset < 0x08000000 + spec.flash_bytes and reset & 1, "Thumb reset vector in flash"
