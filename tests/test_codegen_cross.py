"""The generated C builds for Cortex-M4 and M7 with -Wall -Wextra -Werror, stand-alone (no libc)."""
from __future__ import annotations

import pytest

from conftest import require_tool
from toolkit.codegen import KERNEL_SETS, generate
from toolkit.codegen.cross import CPUS, cross_build, parse_size_sysv
from toolkit.codegen.parity import EXTERNAL_MODELS
from toolkit.paths import external_model

SIZE_A = """edgetk-cortex-m4.elf  :
section           size    addr
.text              408   32768
.rodata            864   33184
.data               12   38144
.bss                32   38156
.comment            38       0
Total             1354
"""


def test_codegen_size_parser():
    s = parse_size_sysv(SIZE_A)
    assert (s.text, s.rodata, s.data, s.bss) == (408, 864, 12, 32)
    assert s.flash == 408 + 864 + 12 and s.ram == 44


@pytest.mark.parametrize("kernels", sorted(KERNEL_SETS))
@pytest.mark.parametrize("name", sorted(EXTERNAL_MODELS))
def test_codegen_cross_compile_cortex_m(external, name, kernels, tmp_path):
    require_tool("arm-none-eabi-gcc")
    require_tool("arm-none-eabi-size")
    res = generate(external_model(EXTERNAL_MODELS[name]), tmp_path / "lib", kernels=kernels)
    for cpu in sorted(CPUS):
        size = cross_build(tmp_path / "lib", tmp_path / cpu, cpu)
        print(f"{name} {kernels} {cpu}: flash {size.flash} B (text {size.text} + rodata {size.rodata}), "
              f"RAM {size.ram} B (arena {res.arena_size})")
        assert size.bss >= res.arena_size          # the arena is static, zero-initialised RAM
        assert size.rodata >= res.flash_estimate - 128 * len(res.ops)  # weights stayed const (flash)
        assert size.text > 0
