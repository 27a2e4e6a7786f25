"""Kernel sets by short name: a set is an ordered list of kernel folders, first match wins.

An optimized variant (e.g. Cortex-M SIMD) is one folder under codegen/kernels/ that provides some
family files (et_conv.c, ...) with the same functions; the rest falls back to the reference set.
Register it with one line below; the parity tests run every registered set.
"""
from __future__ import annotations

import logging
from pathlib import Path

from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)

KERNEL_ROOT = Path(__file__).resolve().parent / "kernels"
HEADERS = ("et_kernels.h", "et_fixedpoint.h")
EXTRA_FILES = {"et_conv": ("et_conv_sched.c",),  # schedules shared by every set (per-pixel fns vary)
               "et_dsp_conv": ("et_dsp_mm.c", "et_dsp_add.c"),  # conv fused with an ADD calls et_dsp_add
               "et_dsp_fc": ("et_dsp_mm.c",)}

DEFAULT = "fast"  # bit-exact with "reference" (parity tests run every set); about half the instructions on KWS
KERNEL_SETS: dict[str, tuple[str, ...]] = {
    "reference": ("reference",),
    "fast": ("fast", "reference"),  # portable conv/depthwise speed-ups; rest from reference
    # Cortex-M DSP extension (M4/M7/M33; portable C elsewhere, same bits) on weights re-laid out at generation
    # time (toolkit/codegen/specialize.py); steps outside its exact range keep the fast/reference kernels.
    "dsp": ("dsp", "fast", "reference"),
}
SET_HEADERS: dict[str, tuple[str, ...]] = {"dsp": ("et_dsp.h", "et_dsp_simd.h")}  # included by edgetk_model.c
SPECIALIZED = frozenset({"dsp"})  # sets whose steps toolkit.codegen.specialize rewrites


def headers(name: str) -> tuple[str, ...]:
    """The set's own headers, which the generated edgetk_model.c includes after et_kernels.h."""
    return SET_HEADERS.get(name, ())


def kernel_sources(name: str, families: set[str]) -> list[Path]:
    """The kernel files (headers + one .c per family used) of a kernel set."""
    if name not in KERNEL_SETS:
        raise EdgetkError(f"unknown kernel set '{name}'",
                          fix=f"use one of: {', '.join(sorted(KERNEL_SETS))}")
    files = []
    stems = sorted(f"{f}.c" for f in families)
    stems += sorted({x for f in families for x in EXTRA_FILES.get(f, ())} - set(stems))
    for stem in list(HEADERS) + list(headers(name)) + stems:
        for folder in KERNEL_SETS[name]:
            p = KERNEL_ROOT / folder / stem
            if p.is_file():
                files.append(p)
                break
        else:
            raise EdgetkError(f"kernel file {stem} missing from kernel set '{name}'",
                              fix="reinstall edgetk (kernels ship as package data)")
    return files
