"""Run a generated C library on an emulated Cortex-M (QEMU mps2) and count its instructions.

The library is linked with a bare-metal program (toolkit/native/m4.py harness) that runs every input
through edgetk_invoke between instruction markers and prints the outputs in hex; with `per_op`, a copy
of edgetk_model.c has marker pairs around each operator instead. Figures are "instructions (QEMU)",
counted exactly by the project's TCG plugin, not cycles.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_write_text

log = logging.getLogger(__name__)

# core -> (compiler flags name in toolkit.native.m4, linker script, QEMU machine)
CORES = {"cortex-m4": ("M4_FLAGS", "an386.ld", "mps2-an386"),
         "cortex-m7": ("M7_FLAGS", "an500.ld", "mps2-an500"),
         "cortex-m3": ("M3_FLAGS", "an385.ld", "mps2-an385")}
_OP_LINE = re.compile(r"^    /\* (\d+): (\w+) \*/$")
_MANIFEST_ROW = re.compile(r"^\|\s*(KWS|IC|AD)\s*\|([^|]*)\|([^|]*)\|([^|]*)\|")


def cmsis_figures(manifest: str) -> dict[str, float]:
    """Instructions per inference of TFLite-Micro + CMSIS-NN per MLPerf model (kws, ic, ad), from the table of
    shared/MANIFEST.md, measured on the same emulator with the same counting (pure: takes the text)."""
    out = {}
    for line in manifest.splitlines():
        m = _MANIFEST_ROW.match(line.strip())
        value = re.match(r"\s*([\d.]+)M", m.group(4)) if m else None
        if value:
            out[m.group(1).lower()] = float(value.group(1)) * 1e6
    return out


@dataclass(frozen=True)
class McuRun:
    """Outputs [N, output bytes] and instructions per inference (per_op: per operator of the first input)."""

    outputs: np.ndarray
    instructions: tuple[int, ...]
    per_op: tuple[tuple[int, str, int], ...] = ()   # (operator index, type, instructions)
    classes: tuple[dict[str, int], ...] = ()        # with classes=True: per inference (per_op: per operator)


def instrument(model_c: str) -> str:
    """edgetk_model.c with a marker pair around each operator of the schedule (edgetk_run; edgetk_invoke in
    libraries generated before the input and output moved into the arena) (pure: text in, text out)."""
    out, ops, inside = [], [], False
    for line in model_c.splitlines():
        if line.startswith(("int edgetk_run(", "int edgetk_invoke(")) and not ops:
            inside = True
        m = _OP_LINE.match(line) if inside else None
        if m:
            out.append("    edgetk_mark_stop();\n    edgetk_mark_start();" if ops else "    edgetk_mark_start();")
            ops.append(m.group(0))
        if inside and line == "    return 0;":
            out.append("    edgetk_mark_stop();")
            inside = False
        out.append(line)
    if not ops:
        raise EdgetkError("edgetk_model.c has no operator comments to instrument",
                          fix="generate the library with this edgetk version")
    return "void edgetk_mark_start(void);\nvoid edgetk_mark_stop(void);\n" + "\n".join(out) + "\n"


def _main_c(x: np.ndarray) -> str:
    rows = []
    for xi in x:
        b = xi.tobytes()
        rows.append("{" + ",".join(str(v) for v in b) + "}")
    return "\n".join([
        '#include "etb_harness.h"', '#include "edgetk_model.h"',
        f"static const uint8_t k_x[{len(x)}][EDGETK_INPUT_SIZE] __attribute__((aligned(4))) = {{",
        ",\n".join(rows), "};", "#ifdef EDGETK_IO_IN_ARENA",
        "/* the input copied into the arena outside the markers: the window counts edgetk_run alone */",
        "static int run(int i)", "{", "    int32_t k;", "    volatile int8_t *in = edgetk_input();",
        "    for (k = 0; k < EDGETK_INPUT_SIZE; ++k) {", "        in[k] = (int8_t)k_x[i][k];", "    }",
        "    edgetk_mark_start();", "    k = edgetk_run();", "    edgetk_mark_stop();",
        '    etb_hex("O", edgetk_output(), (size_t)EDGETK_OUTPUT_SIZE);', "    return k;", "}", "#else",
        "static int8_t g_out[EDGETK_OUTPUT_SIZE] __attribute__((aligned(4)));", "static int run(int i)", "{",
        "    int rc;", "    edgetk_mark_start();", "    rc = edgetk_invoke((const int8_t *)k_x[i], g_out);",
        "    edgetk_mark_stop();", '    etb_hex("O", g_out, sizeof g_out);', "    return rc;", "}", "#endif",
        "int etb_main(void)", "{", "    int rc = 0, i;", f"    for (i = 0; i < {len(x)}; ++i) {{",
        "        rc |= run(i);", "    }", "    return rc;", "}", ""])


def _per_op_main_c(x: np.ndarray) -> str:
    return _main_c(x[:1]).replace("    edgetk_mark_start();\n", "").replace("    edgetk_mark_stop();\n", "")


def run_on_qemu(lib_dir: str | os.PathLike, x: np.ndarray, work: str | os.PathLike, *, core: str = "cortex-m4",
                per_op: bool = False, timeout: float = 600.0, classes: bool = False) -> McuRun:
    """Outputs and instruction counts of the library in lib_dir on inputs x ([N, ...] of the input's bytes);
    `classes`: also the plugin's instruction classes per window (toolkit.hil.cycles prices them)."""
    from toolkit.native import m4

    if core not in CORES:
        raise EdgetkError(f"unknown core {core!r} for QEMU", fix=f"use one of: {', '.join(CORES)}")
    flags, ld, machine = CORES[core]
    lib_dir, work = Path(lib_dir), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    srcs = [p for p in sorted((lib_dir / "kernels").glob("*.c"))] + [p for p in sorted(lib_dir.glob("*.c"))
                                                                       if p.name != "edgetk_model.c"]
    model_c = (lib_dir / "edgetk_model.c").read_text()
    tag = "ops" if per_op else "run"
    model = atomic_write_text(work / f"edgetk_model_{tag}.c", instrument(model_c) if per_op else model_c)
    main = atomic_write_text(work / f"main_{tag}.c", (_per_op_main_c if per_op else _main_c)(x))
    elf = m4.build_m4([model, main, *srcs], [lib_dir, lib_dir / "kernels"], work, name=f"{core}-{tag}",
                      cpu_flags=getattr(m4, flags), linker_script=ld)
    res = m4.run_m4(elf, timeout=timeout, machine=machine, classes=classes)
    outs = np.stack([np.frombuffer(bytes.fromhex(h), np.int8) for h in res.lines("O")])
    if per_op:
        names = [(int(m.group(1)), m.group(2)) for m in map(_OP_LINE.match, model_c.splitlines()) if m]
        if len(res.counts) != len(names):
            raise EdgetkError(f"{len(res.counts)} marked regions for {len(names)} operators")
        return McuRun(outs, (sum(res.counts),), tuple((i, op, n) for (i, op), n in zip(names, res.counts)),
                      res.classes)
    return McuRun(outs, tuple(res.counts), classes=res.classes)
