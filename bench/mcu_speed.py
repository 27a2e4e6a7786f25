"""Bench: instructions per inference of edgetk's generated C on an emulated Cortex-M4, against TFLite-Micro + CMSIS-NN.

For each MLPerf Tiny model in shared/external (KWS, IC, AD, streaming wake word) and each kernel set / optimize mode,
QEMU mps2-an386 runs the library linked into a bare-metal program (toolkit/codegen/mcu_run.py) and the project's TCG
plugin counts the instructions of each edgetk_invoke exactly, then of each operator (a second build with marker pairs
around every operator). Printed per model and configuration: instructions per inference, per MAC, the ratio to
TFLite-Micro + CMSIS-NN measured on the same emulator with the same counting (shared/MANIFEST.md; lines containing
`ratio vs CMSIS-NN`), outputs == TFLite-Micro on the same inputs, the flash of the library linked alone for Cortex-M4
(arm-none-eabi-size) and its code + tables beyond the weights and biases; then a per-operator table. Figures are
"instructions (QEMU)", not cycles. `speed` is generated for the NUCLEO-L4R5ZI's flash (targets/nucleo-l4r5zi.toml).
Acceptance (issue 15): size <= 1.0x CMSIS-NN on KWS, IC and AD; speed <= 0.6x; code + tables <= 12 KB.
Run: .venv/bin/python bench/mcu_speed.py [--models kws,ic,ad,sww] [--configs fast:size,dsp:size,dsp:speed] [--inputs 2]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CODE_LIMIT = 12 * 1024
BAR, GOAL = 1.0, 0.6


@dataclass
class Result:
    name: str
    config: str
    instructions: float
    macs: int
    same: bool
    flash: int
    beyond: int
    arena: int
    per_op: tuple
    op_macs: dict


def measure(name: str, path: Path, x: np.ndarray, ref: np.ndarray, kernels: str, optimize: str, work: Path,
            flash_bytes: int) -> Result:
    from toolkit.codegen import generate
    from toolkit.codegen.cross import cross_build
    from toolkit.codegen.mcu_run import run_on_qemu

    lib = work / f"{name}-{kernels}-{optimize}"
    res = generate(path, lib, kernels=kernels, optimize=optimize, flash_bytes=flash_bytes if optimize == "speed" else None)
    run = run_on_qemu(lib, x, work / f"qemu-{name}-{kernels}-{optimize}")
    ops = run_on_qemu(lib, x, work / f"qemu-{name}-{kernels}-{optimize}", per_op=True)
    size = cross_build(lib, work / f"size-{name}-{kernels}-{optimize}", "cortex-m4")
    plan = json.loads((lib / "plan.json").read_text())
    weights = plan["specialized"]["weight_bytes"]
    same = run.outputs.shape == ref.shape and bool(np.array_equal(run.outputs, ref)) and \
        bool(np.array_equal(ops.outputs, ref[:1]))
    return Result(name, f"{kernels}/{optimize}", float(np.mean(run.instructions)), res.macs, same, size.flash,
                  size.flash - weights, res.arena_size, ops.per_op, {o["index"]: o["macs"] for o in plan["ops"]})


def per_op_table(rows: list[Result]) -> list[str]:
    """Operators down, configurations across: instructions and instructions per MAC."""
    head = f"    {'op':>3} {'type':<18} {'MACs':>10} " + " ".join(f"{r.config:>24}" for r in rows)
    lines = [head]
    macs = rows[0].op_macs
    for k, (i, op, _) in enumerate(rows[0].per_op):
        cells = []
        for r in rows:
            n = r.per_op[k][2]
            cells.append(f"{n:>12,}" + (f" ({n / macs[i]:5.2f}/MAC)" if macs.get(i) else " " * 12))
        lines.append(f"    {i:>3} {op:<18} {macs.get(i, 0):>10,} " + " ".join(cells))
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="kws,ic,ad,sww")
    ap.add_argument("--configs", default="fast:size,dsp:size,dsp:speed",
                    help="kernel set:optimize pairs (reference:size is slow: ~43M instructions on KWS)")
    ap.add_argument("--inputs", type=int, default=2, help="inputs per model (the shared reference inputs first)")
    args = ap.parse_args()

    from toolkit.codegen import parity as par
    from toolkit.codegen.mcu_run import cmsis_figures
    from toolkit.paths import external_model, shared_dir
    from toolkit.targets import get_target
    from toolkit.tflite import read_model

    manifest = shared_dir() / "MANIFEST.md"
    cmsis = cmsis_figures(manifest.read_text()) if manifest.is_file() else {}
    nucleo = get_target("nucleo-l4r5zi").flash_bytes
    configs = [tuple(c.split(":")) for c in args.configs.split(",")]
    print("instructions per inference on QEMU mps2-an386 (Cortex-M4), exact count by the TCG plugin; not cycles")
    print(f"TFLM + CMSIS-NN from {manifest} (same emulator, same counting); speed generated for the NUCLEO-L4R5ZI's "
          f"{nucleo:,} B flash")
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="edgetk-mcu-speed-") as d:
        for name in args.models.split(","):
            path = external_model(par.EXTERNAL_MODELS[name])
            if not path.is_file():
                print(f"{name}: skipped, {path} not found")
                continue
            x = par.inputs_for(name, read_model(path), args.inputs)
            ref = par.run_tflm_flat(path, x)
            rows = []
            for kernels, optimize in configs:
                r = measure(name, path, x, ref, kernels, optimize, Path(d), nucleo)
                rows.append(r)
                base = cmsis.get(name)
                ratio = f"ratio vs CMSIS-NN {r.instructions / base:.2f}x ({base:,.0f})" if base else \
                    "ratio vs CMSIS-NN n/a (not in MANIFEST.md)"
                print(f"{name:<4} {r.config:<11} {r.instructions:>12,.0f} instructions {r.instructions / r.macs:5.2f}/MAC  "
                      f"{ratio}  outputs == TFLite-Micro: {r.same}  flash {r.flash:,} B (code + tables beyond weights "
                      f"{r.beyond:,} B)  arena {r.arena:,} B", flush=True)
                if base and kernels == "dsp":
                    limit = BAR if optimize == "size" else GOAL
                    verdicts.append((name, r.config, r.instructions / base, limit, r.beyond, r.flash <= nucleo, r.same))
                elif kernels == "dsp":
                    verdicts.append((name, r.config, None, None, r.beyond, r.flash <= nucleo, r.same))
            print("\n".join(per_op_table(rows)))
    print("acceptance (issue 15):")
    ok = True
    for name, config, ratio, limit, beyond, fits, same in verdicts:
        met = (ratio is None or ratio <= limit) and beyond <= CODE_LIMIT and fits and same
        ok &= met
        want = f"<= {limit:.1f}x: {ratio:.2f}x" if ratio is not None else "no CMSIS-NN figure"
        print(f"  {name:<4} {config:<11} {want}; code + tables {beyond:,} B (<= {CODE_LIMIT:,}); fits 2 MB flash: {fits}; "
              f"bit-exact: {same} -> {'met' if met else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
