"""Bench: instructions per inference of edgetk's generated C on an emulated Cortex-M4, against TFLite-Micro + CMSIS-NN.

For each MLPerf Tiny model in shared/external (KWS, IC, AD, streaming wake word) and each kernel set / optimize mode,
QEMU mps2-an386 runs the library linked into a bare-metal program (toolkit/codegen/mcu_run.py) and the project's TCG
plugin counts the instructions of each edgetk_invoke exactly, then of each operator (a second build with marker pairs
around every operator). Printed per model and configuration: instructions per inference, per MAC, the ratio to
TFLite-Micro + CMSIS-NN measured on the same emulator with the same counting (shared/MANIFEST.md; lines containing
`ratio vs CMSIS-NN`), outputs == TFLite-Micro on the same inputs, the flash of the library linked alone for Cortex-M4
(arm-none-eabi-size) and its code + tables beyond the weights and biases; then a per-operator table. Figures are
"instructions (QEMU)", not cycles. `speed` is generated for the NUCLEO-L4R5ZI's flash (targets/nucleo-l4r5zi.toml).
Beside the instructions: estimated cycles on the NUCLEO-L4R5ZI (toolkit/hil/cycles.py: the plugin's instruction
classes priced by the Cortex-M4 TRM plus the board's flash fetch stall from targets/nucleo-l4r5zi.toml [cycles]),
per inference and per operator, labelled as estimates; then the calibration: the fetch stall fitted again on KWS
(TFLite-Micro + CMSIS-NN's published latency and QEMU instructions, class mix of the dsp:size run) and, per model, a
line `calibration error` (estimate vs published ms).
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
    classes: dict        # instruction classes per inference (the plugin's, averaged)
    op_classes: tuple    # per operator of the first input


def measure(name: str, path: Path, x: np.ndarray, ref: np.ndarray, kernels: str, optimize: str, work: Path,
            flash_bytes: int) -> Result:
    from toolkit.codegen import generate
    from toolkit.codegen.cross import cross_build
    from toolkit.codegen.mcu_run import run_on_qemu
    from toolkit.hil.cycles import mean_classes

    lib = work / f"{name}-{kernels}-{optimize}"
    res = generate(path, lib, kernels=kernels, optimize=optimize, flash_bytes=flash_bytes if optimize == "speed" else None)
    run = run_on_qemu(lib, x, work / f"qemu-{name}-{kernels}-{optimize}", classes=True)
    ops = run_on_qemu(lib, x, work / f"qemu-{name}-{kernels}-{optimize}", per_op=True, classes=True)
    size = cross_build(lib, work / f"size-{name}-{kernels}-{optimize}", "cortex-m4")
    plan = json.loads((lib / "plan.json").read_text())
    weights = plan["specialized"]["weight_bytes"]
    same = run.outputs.shape == ref.shape and bool(np.array_equal(run.outputs, ref)) and \
        bool(np.array_equal(ops.outputs, ref[:1]))
    return Result(name, f"{kernels}/{optimize}", float(np.mean(run.instructions)), res.macs, same, size.flash,
                  size.flash - weights, res.arena_size, ops.per_op, {o["index"]: o["macs"] for o in plan["ops"]},
                  mean_classes(list(run.classes)), ops.classes)


@dataclass(frozen=True)
class Board:
    """The board whose cycles are estimated: clock, core cost table, memory model (targets/*.toml [cycles])."""

    name: str
    clock_hz: float
    costs: object
    memory: object

    def cycles(self, classes: dict, art: bool | None = None) -> float:
        """Estimated cycles (art: with the ART instruction cache on or off instead of the target's setting)."""
        from toolkit.hil.cycles import estimate, with_memory

        memory = self.memory if art is None else with_memory(self.memory, art=art)
        return estimate(classes, self.costs, memory).cycles


def board(name: str = "nucleo-l4r5zi") -> Board:
    from toolkit.hil.cycles import MemoryModel, core_costs
    from toolkit.targets import get_target

    spec = get_target(name)
    return Board(name, spec.clock_hz, core_costs(spec.core), MemoryModel.from_table(dict(spec.cycles)))


def per_op_table(rows: list[Result], nucleo: Board | None = None) -> list[str]:
    """Operators down, configurations across: instructions and instructions per MAC (and, with a board, the
    estimated cycles of the operator on it)."""
    est = nucleo is not None and all(len(r.op_classes) == len(r.per_op) for r in rows)
    head = f"    {'op':>3} {'type':<18} {'MACs':>10} " + " ".join(f"{r.config:>{37 if est else 24}}" for r in rows)
    lines = [head] + ([f"    (~N c: estimated {nucleo.name} cycles of the operator; estimate, not measured)"] if est else [])
    macs = rows[0].op_macs
    for k, (i, op, _) in enumerate(rows[0].per_op):
        cells = []
        for r in rows:
            n = r.per_op[k][2]
            cells.append(f"{n:>12,}" + (f" ({n / macs[i]:5.2f}/MAC)" if macs.get(i) else " " * 12)
                         + (f" ~{nucleo.cycles(r.op_classes[k]):>10,.0f} c" if est else ""))
        lines.append(f"    {i:>3} {op:<18} {macs.get(i, 0):>10,} " + " ".join(cells))
    return lines


def calibration_lines(results: dict[str, Result], manifest_text: str, cmsis: dict, nucleo: Board) -> list[str]:
    """The fetch stall fitted again on KWS and, per model, the estimate's error against the published latency."""
    from toolkit.hil.cycles import calibrate, published_ms

    pub = published_ms(manifest_text)
    ref, vendor = pub.get("tflm_cmsis", {}), pub.get("x_cube_ai", {})
    proxies = {m: r.classes for m, r in results.items()}
    if "kws" not in proxies or not ref:
        return ["calibration: skipped (needs kws with dsp:size and the published figures in MANIFEST.md)"]
    cal = calibrate(proxies, cmsis, ref, nucleo.clock_hz, nucleo.costs, on="kws",
                    flash_wait_states=nucleo.memory.flash_wait_states)
    lines = [f"calibration (estimate): flash fetch stall per 8-byte line fitted on KWS = "
             f"{cal.memory.fetch_stall_per_line:.3f} cycles (targets/{nucleo.name}.toml uses "
             f"{nucleo.memory.fetch_stall_per_line}); TFLite-Micro + CMSIS-NN's class mix borrowed from dsp:size"]
    for m in cal.errors:
        est, published = cal.errors[m]
        ours = nucleo.cycles(results[m].classes) / nucleo.clock_hz * 1e3
        lines.append(f"  {m:<4} calibration error {cal.error(m):+.1%}: TFLite-Micro + CMSIS-NN estimated {est:.1f} ms vs "
                     f"published {published} ms{' (the fitted model)' if m == cal.model else ''}; edgetk dsp:size "
                     f"estimated {ours:.1f} ms (X-CUBE-AI published {vendor.get(m, float('nan'))} ms)")
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
    nucleo_board = board()
    proxies: dict[str, Result] = {}
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
                cyc = nucleo_board.cycles(r.classes)
                print(f"{name:<4} {r.config:<11} {r.instructions:>12,.0f} instructions {r.instructions / r.macs:5.2f}/MAC  "
                      f"{ratio}  outputs == TFLite-Micro: {r.same}  flash {r.flash:,} B (code + tables beyond weights "
                      f"{r.beyond:,} B)  arena {r.arena:,} B", flush=True)
                print(f"{'':<4} {'':<11} {cyc:>12,.0f} estimated cycles {cyc / r.macs:5.2f}/MAC  "
                      f"{cyc / nucleo_board.clock_hz * 1e3:.2f} ms at {nucleo_board.clock_hz / 1e6:.0f} MHz on "
                      f"{nucleo_board.name}; {nucleo_board.cycles(r.classes, art=True) / nucleo_board.clock_hz * 1e3:.2f} "
                      f"ms with the ART cache hiding every fetch (estimate: classified QEMU instructions x Cortex-M4 TRM "
                      f"+ flash fetch stall; not measured)", flush=True)
                if (kernels, optimize) == ("dsp", "size"):
                    proxies[name] = r
                if base and kernels == "dsp":
                    limit = BAR if optimize == "size" else GOAL
                    verdicts.append((name, r.config, r.instructions / base, limit, r.beyond, r.flash <= nucleo, r.same))
                elif kernels == "dsp":
                    verdicts.append((name, r.config, None, None, r.beyond, r.flash <= nucleo, r.same))
            print("\n".join(per_op_table(rows, nucleo_board)))
    print("\n".join(calibration_lines(proxies, manifest.read_text() if manifest.is_file() else "", cmsis,
                                      nucleo_board)))
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
