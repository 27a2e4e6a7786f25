"""Instruction classes from the QEMU plugin (real QEMU, a hand-written Thumb-2 loop) and the cycle estimate."""
from __future__ import annotations

import pytest

from conftest import require_tool
from toolkit.hil import cycles as cy
from toolkit.paths import shared_dir

# One loop iteration of `mix` (below): what the plugin must report for it, class by class.
PER_ITERATION = {"insns": 11, "ld": 2, "pipe": 1, "mac": 1, "mul": 1, "lsm": 3, "lsm_regs": 10, "div": 1, "st": 1,
                 "alu": 1, "br": 1, "taken": 1, "flash_rd": 3, "it": 0, "fp": 0}

MIX_S = """    .syntax unified
    .thumb
    .text
    .global mix
    .type mix, %function
    .thumb_func
@ mix(flash, ram, n): n iterations of a loop with one instruction of most classes
mix:
    push {r4-r9, lr}
    mov r9, r2
    movs r5, #0
    movs r8, #3
1:
    ldr r3, [r0]
    ldr r4, [r1]
    smlad r5, r3, r4, r5
    mul r6, r3, r4
    ldrd r6, r7, [r0]
    push {r4-r7}
    pop {r4-r7}
    sdiv r6, r6, r8
    str r5, [r1, #4]
    subs r9, r9, #1
    bne 1b
    pop {r4-r9, pc}
    .size mix, .-mix
"""

MAIN_C = """#include <stdint.h>
#include "etb_harness.h"
void mix(const int32_t *flash, int32_t *ram, int32_t n);
static const int32_t k_flash[4] = {5, 6, 7, 8};
static int32_t g_ram[4] = {1, 2, 3, 4};
int etb_main(void)
{
    edgetk_mark_start();
    mix(k_flash, g_ram, 10);
    edgetk_mark_stop();
    edgetk_mark_start();
    mix(k_flash, g_ram, 30);
    edgetk_mark_stop();
    return 0;
}
"""


@pytest.fixture(scope="module")
def mix_run(tmp_path_factory):
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    from toolkit.native import m4

    d = tmp_path_factory.mktemp("mix")
    (d / "mix.S").write_text(MIX_S)
    (d / "main.c").write_text(MAIN_C)
    elf = m4.build_m4([d / "main.c", d / "mix.S"], [], d, name="mix")
    return m4.run_m4(elf, classes=True, timeout=60)


def test_plugin_classifies_each_instruction_of_a_known_loop(mix_run):
    """20 more iterations add exactly 20 x the loop body's classes (the code around the loop cancels out)."""
    small, big = mix_run.classes
    got = {k: big[k] - small[k] for k in PER_ITERATION}
    assert got == {k: 20 * v for k, v in PER_ITERATION.items()}


def test_plugin_classes_add_up_to_the_exact_count(mix_run):
    for counted, classes in zip(mix_run.counts, mix_run.classes):
        parts = sum(classes[k] for k in ("alu", "it", "mul", "mac", "div", "fp", "ld", "st", "lsm", "br"))
        assert parts == classes["insns"]
        assert abs(classes["insns"] - counted) <= 1  # the marker blocks: within one instruction of the exact count
        assert classes["bytes"] >= 2 * classes["insns"] and classes["lines"] >= classes["bytes"] // 8


def test_estimate_prices_each_class_by_the_cortex_m4_table():
    m4 = cy.CORES["cortex-m4"]
    one = {k: 20 * v for k, v in PER_ITERATION.items()} | {"lines": 100}
    est = cy.estimate(one, m4, cy.MemoryModel(art=False, fetch_stall_per_line=2.0))
    # per iteration: 2 loads (2 + 2 - 1 pipelined), SMLAD 1, MUL 1, LDRD 3, PUSH 5, POP 5, SDIV 7, STR 1, SUBS 1, BNE 1
    assert est.parts["execute"] == 20 * (3 + 1 + 1 + 3 + 5 + 5 + 7 + 1 + 1 + 1)
    assert est.parts["branch_refill"] == 20 * 2 and est.parts["flash_fetch"] == 200.0
    assert cy.estimate(one, m4, cy.MemoryModel(art=True, fetch_stall_per_line=2.0)).parts["flash_fetch"] == 0.0


def test_published_figures_and_calibration_from_the_manifest():
    manifest = shared_dir() / "MANIFEST.md"
    if not manifest.is_file():
        pytest.skip(f"{manifest} not found; fix: set EDGETK_SHARED to the shared data folder")
    pub = cy.published_ms(manifest.read_text())
    assert pub["tflm_cmsis"] == {"kws": 181.9, "ic": 704.2, "ad": 10.05}
    assert pub["x_cube_ai"] == {"kws": 43.4, "ic": 165.7, "ad": 4.79}
    mix = {"insns": 100, "alu": 100, "lines": 50}
    cal = cy.calibrate({"kws": mix, "ic": mix}, {"kws": 1e6, "ic": 2e6}, {"kws": 20.0, "ic": 30.0}, 100e6,
                       cy.CORES["cortex-m4"], on="kws", flash_wait_states=5)
    # kws: 1e6 alu cycles + 5e5 lines x stall = 2e6 cycles (20 ms at 100 MHz) -> stall 2; ic then 4e6 = 40 ms
    assert cal.memory.fetch_stall_per_line == pytest.approx(2.0)
    assert cal.errors["ic"] == pytest.approx((40.0, 30.0)) and cal.error("ic") == pytest.approx(1 / 3)


def test_unknown_core_is_one_error():
    from toolkit.errors import EdgetkError

    with pytest.raises(EdgetkError, match="no cycle cost table for core 'cortex-m7'"):
        cy.core_costs("cortex-m7")


def test_target_cycles_table_is_validated(tmp_path):
    import tomllib

    from toolkit.errors import EdgetkError
    from toolkit.paths import repo_dir
    from toolkit.targets import load_target_file

    src = (repo_dir("targets") / "nucleo-l4r5zi.toml").read_text()
    spec = load_target_file(repo_dir("targets") / "nucleo-l4r5zi.toml")
    mem = cy.MemoryModel.from_table(dict(spec.cycles))
    assert mem.flash_wait_states == 5 and mem.art is False and 0 < mem.fetch_stall_per_line <= 6
    assert tomllib.loads(src)["cycles"]["fetch_stall_per_line"] == mem.fetch_stall_per_line
    for bad, msg in (("fetch_stall_per_line = 2.73", "fetch_stall_per_line = -1.0"),
                     ("art = false", "art_cache = false")):
        path = tmp_path / "nucleo-l4r5zi.toml"
        path.write_text(src.replace(bad, msg))
        with pytest.raises(EdgetkError, match=r"nucleo-l4r5zi.toml: field 'cycles\.(fetch_stall_per_line|art_cache)'"):
            load_target_file(path)
