"""The generated C builds for Cortex-M4 and M7 with -Wall -Wextra -Werror, stand-alone (no libc)."""
from __future__ import annotations

import pytest

from conftest import require_tool
from toolkit.codegen import KERNEL_SETS, generate
from toolkit.codegen.cross import CPUS, cross_build, kernel_set_imports, parse_size_sysv, undefined_symbols
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


def test_codegen_undefined_symbols_parser():
    text = "         U __aeabi_ldivmod\n         U et_conv2d_s8_pixel\n         U memset\n"
    assert undefined_symbols(text) == {"__aeabi_ldivmod", "memset"}


@pytest.mark.parametrize("kernels", sorted(KERNEL_SETS))
def test_codegen_kernels_need_no_libc_or_libgcc(kernels, tmp_path):
    """Every kernel file (not only those a model uses): gcc -O2 must not call memset/memcpy/__aeabi_*."""
    require_tool("arm-none-eabi-gcc")
    require_tool("arm-none-eabi-nm")
    from toolkit.codegen.kernel_sets import KERNEL_ROOT

    sources = {f"{folder}-{c.stem}.o" for folder in KERNEL_SETS[kernels] for c in (KERNEL_ROOT / folder).glob("*.c")}
    assert len(sources) >= 5, sources  # conv, depthwise, fc, pool, ... : the check is not vacuous
    for cpu in sorted(CPUS):
        assert kernel_set_imports(kernels, cpu, tmp_path / cpu) == set(), cpu
        assert {o.name for o in (tmp_path / cpu).glob("*.o")} == sources, cpu  # every kernel file was compiled
