"""NUCLEO-H743ZI (Cortex-M7, 2 MB flash): the target file loads with its facts, falls back to qemu-m7, and its
board port compiles and links into the board's memory map (tests/test_firmware_devices.py
test_nucleo_port_compiles)."""
from __future__ import annotations

from toolkit.targets import fallback_chain, load_targets


def test_h743_target_loads_with_its_facts():
    t = load_targets()["nucleo-h743zi"]
    assert (t.kind, t.core, t.clock_hz, t.kernels) == ("board", "cortex-m7", 480_000_000, "dsp")
    assert t.flash_bytes == 2 * 1024 * 1024 and t.ram_bytes == 512 * 1024 and "0483:374b" in t.usb_ids
    assert t.cycles == () and t.cycles_per_instruction == 0.0, "no cycle model until one is measured"
    assert [s.name for s in fallback_chain("nucleo-h743zi")] == ["nucleo-h743zi", "qemu-m7", "host-sim"]

