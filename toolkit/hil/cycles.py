"""Cycle estimates from classified instructions: a per-core cost table priced on the QEMU plugin's counts.

The TCG plugin (firmware_stubs/qemu-plugin, `classes=`) counts, per marked window, the executed instructions
by class (toolkit.native.m4.parse_classes). A core's cost table (the technical reference manual's cycles at
zero wait states) and the target's memory (flash wait states, ART cache, a fetch stall per 8-byte instruction
line calibrated once against a published figure) turn them into estimated cycles:

    cycles = sum(class count x TRM cycles) + taken branches x P + fetch lines x stall (no cache)

Everything here is an estimate, labelled as one: QEMU runs no pipeline, caches or wait states. The
calibration (`calibrate`) uses MLPerf Tiny's published latency of TFLite-Micro + CMSIS-NN on the
NUCLEO-L4R5ZI and that code's instruction count on the same emulator (shared/MANIFEST.md); its class mix
cannot be measured here (TFLite-Micro + CMSIS-NN cannot be built offline), so it borrows the mix of edgetk's
`dsp` code on the same model (same kind of SIMD im2col/GEMM code) scaled to those instructions.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from typing import Any, Mapping

from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)

LABEL = "estimate (classified QEMU instructions x core cost table, calibrated once; not measured)"


@dataclass(frozen=True)
class CoreCosts:
    """Cycles per instruction class at zero wait states (a core's technical reference manual)."""

    source: str
    alu: float = 1.0       # data processing, SIMD add/sub, SXTB16, SEL, saturation, moves
    it: float = 1.0        # IT (0-1; not folded here)
    mul: float = 1.0       # MUL
    mac: float = 1.0       # MLA/MLS, long multiplies, DSP multiply-accumulates
    div: float = 7.0       # SDIV/UDIV: 2-12, data dependent (midpoint)
    fp: float = 1.0        # VFP (the generated C uses none)
    ld: float = 2.0        # single load
    pipe: float = -1.0     # a single load/store right after a single load pipelines: one cycle less
    st: float = 1.0        # single store (write buffer)
    lsm: float = 1.0       # LDM/STM/PUSH/POP/LDRD/STRD: 1 + N
    lsm_regs: float = 1.0  # ... per register
    br: float = 1.0        # a branch instruction
    taken: float = 2.0     # + P per taken branch: pipeline refill, 1-3 by target width/alignment (midpoint)


CORES: dict[str, CoreCosts] = {
    "cortex-m4": CoreCosts("Cortex-M4 TRM (ARM DDI 0439) table 3-1: MUL/MLA/long/DSP MACs 1, LDR 2 (pipelined 1), "
                           "LDM/STM 1+N, SDIV/UDIV 2-12, branch 1+P (P 1-3)"),
    "cortex-m3": CoreCosts("Cortex-M3 TRM (ARM DDI 0337) table 18-1: MUL 1, MLA/MLS 2, long multiplies 3-7, "
                           "LDR 2 (pipelined 1), LDM/STM 1+N, SDIV/UDIV 2-12, branch 1+P", mac=5.0),
}


@dataclass(frozen=True)
class MemoryModel:
    """A target's memory as the estimate sees it (targets/<name>.toml [cycles])."""

    flash_wait_states: int = 0
    art: bool = True                    # ART accelerator instruction cache on: sequential fetches hidden
    fetch_stall_per_line: float = 0.0   # cycles an executed 8-byte instruction line costs beyond execution
    calibration: str = ""               # where fetch_stall_per_line came from

    @staticmethod
    def from_table(table: Mapping[str, Any]) -> MemoryModel:
        """From a target's [cycles] table (validated by toolkit.targets)."""
        return MemoryModel(**{k: table[k] for k in ("flash_wait_states", "art", "fetch_stall_per_line",
                                                       "calibration") if k in table})


@dataclass(frozen=True)
class Estimate:
    """Estimated cycles of one window and what they are made of."""

    cycles: float
    parts: dict[str, float]
    instructions: int

    def ms(self, clock_hz: float) -> float:
        """Milliseconds at clock_hz."""
        return self.cycles / clock_hz * 1e3


def core_costs(core: str) -> CoreCosts:
    """The cost table of a core, or one EdgetkError naming the cores that have one."""
    if core not in CORES:
        raise EdgetkError(f"no cycle cost table for core {core!r}",
                          fix=f"cycle estimates exist for {', '.join(CORES)}; other cores keep cycles_per_instruction")
    return CORES[core]


def estimate(classes: Mapping[str, float], costs: CoreCosts, memory: MemoryModel = MemoryModel()) -> Estimate:
    """Estimated cycles of one window's class counts (pure)."""
    n = {k: float(classes.get(k, 0)) for k in ("alu", "it", "mul", "mac", "div", "fp", "ld", "pipe", "st", "lsm",
                                             "lsm_regs", "br", "taken", "lines")}
    parts = {
        "execute": sum(n[k] * getattr(costs, k) for k in ("alu", "it", "mul", "mac", "div", "fp", "ld", "pipe",
                                                           "st", "lsm", "lsm_regs", "br")),
        "branch_refill": n["taken"] * costs.taken,
        "flash_fetch": 0.0 if memory.art else n["lines"] * memory.fetch_stall_per_line,
    }
    return Estimate(sum(parts.values()), parts, int(classes.get("insns", 0)))


def scaled(classes: Mapping[str, float], instructions: float) -> dict[str, float]:
    """Class counts scaled to another instruction total (a borrowed class mix)."""
    k = instructions / max(float(classes.get("insns", 0)), 1.0)
    return {name: v * k for name, v in classes.items()}


@dataclass(frozen=True)
class Calibration:
    """fetch_stall_per_line fitted on one model; the estimate's error on the others."""

    model: str
    memory: MemoryModel
    errors: dict[str, tuple[float, float]]   # model -> (estimated ms, published ms)

    def error(self, name: str) -> float:
        """Relative error of the estimate on one model (estimated / published - 1)."""
        est, pub = self.errors[name]
        return est / pub - 1.0


def calibrate(proxies: Mapping[str, Mapping[str, float]], instructions: Mapping[str, float],
              published_ms: Mapping[str, float], clock_hz: float, costs: CoreCosts, *, on: str = "kws",
              flash_wait_states: int = 0) -> Calibration:
    """Fit the flash fetch stall per line on model `on` (published ms of code whose instruction count is known, its
    class mix borrowed from `proxies`), then estimate every model with it (pure)."""
    mixes = {m: scaled(proxies[m], instructions[m]) for m in proxies if m in instructions and m in published_ms}
    if on not in mixes:
        raise EdgetkError(f"cannot calibrate on {on!r}: no class counts, instruction count or published figure",
                          fix="run the calibration model on QEMU with classes and keep shared/MANIFEST.md")
    base = estimate(mixes[on], costs, MemoryModel(art=True))
    stall = (published_ms[on] * clock_hz / 1e3 - base.cycles) / max(mixes[on].get("lines", 0.0), 1.0)
    if not 0.0 <= stall <= 1.0 + flash_wait_states:
        log.warning("calibrated stall %.2f cycles per line lies outside 0..%d (1 + flash wait states)", stall,
                    1 + flash_wait_states)
    mem = MemoryModel(flash_wait_states, False, stall, f"fitted on {on}: {published_ms[on]} ms published")
    errors = {m: (estimate(mix, costs, mem).ms(clock_hz), published_ms[m]) for m, mix in mixes.items()}
    return Calibration(on, mem, errors)


_NUM = r"(\d+(?:\.\d+)?)"
_REFERENCE = re.compile(r"reference submission \(TFLM on Mbed\)\s+" + r"\s*/\s*".join([_NUM] * 3))
_XCUBE = re.compile(r"X-CUBE-AI\s+[\d.]+\s+" + r"\s*/\s*".join([_NUM] * 3))


def published_ms(manifest: str) -> dict[str, dict[str, float]]:
    """MLPerf Tiny's published ms per inference on the NUCLEO-L4R5ZI (KWS, IC, AD) from shared/MANIFEST.md:
    {"tflm_cmsis": {...}, "x_cube_ai": {...}} (pure: takes the text)."""
    text = " ".join(manifest.split())
    out = {}
    for key, rx in (("tflm_cmsis", _REFERENCE), ("x_cube_ai", _XCUBE)):
        m = rx.search(text)
        if m:
            out[key] = dict(zip(("kws", "ic", "ad"), map(float, m.groups())))
    return out


def sum_classes(windows: list[Mapping[str, int]]) -> dict[str, float]:
    """Class counts of several windows added up."""
    out: dict[str, float] = {}
    for w in windows:
        for k, v in w.items():
            out[k] = out.get(k, 0.0) + v
    return out


def mean_classes(windows: list[Mapping[str, int]]) -> dict[str, float]:
    """Class counts per window, averaged (e.g. per inference over N runs)."""
    total = sum_classes(windows)
    return {k: v / max(len(windows), 1) for k, v in total.items()}


def with_memory(memory: MemoryModel, **changes: Any) -> MemoryModel:
    """A copy with some fields changed."""
    return dataclasses.replace(memory, **changes)
