"""Peak RAM of the generated C vs TFLite-Micro's arena, per model and kernel set, measured in the same run.

The generated library keeps the model's input and output inside its arena (edgetk_input/edgetk_output), as
TFLite-Micro keeps them inside its own: ours = EDGETK_ARENA_SIZE, the whole RAM the network needs with
edgetk_input/edgetk_run. Printed per model: TFLite-Micro's arena (its recording allocator, this host's build,
I/O tensors included), and per kernel set (`fast`, codegen's default, and `dsp`, the set the Cortex-M targets
use): our arena, its ratio to TFLite-Micro's, the input's fate (kept intact or reused once read), our RAM with
edgetk_invoke's copy buffers (arena + the caller's input and output), and flash/RAM of the library linked
alone for Cortex-M4 (arm-none-eabi-size). Acceptance (issue 15): arena <= 0.6x TFLite-Micro's on every MLPerf
Tiny model in ../shared, for every kernel set a target uses.
Usage: python bench/codegen_memory.py [--kernels fast,dsp] [extra.tflite ...]   (bundles: BUNDLE/model_int8.tflite)
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from toolkit.codegen import generate  # noqa: E402
from toolkit.codegen.cross import cross_build  # noqa: E402
from toolkit.codegen.parity import EXTERNAL_MODELS  # noqa: E402
from toolkit.paths import external_model  # noqa: E402
from toolkit.runtimes import tflm_arena_bytes  # noqa: E402

GOAL = 0.6
MLPERF = ("kws", "ic", "ad", "sww")
# TFLM minimal arena on a 32-bit Cortex-M build, from shared/MANIFEST.md (for reference)
TFLM_32BIT = {"kws": 22_784, "ic": 54_352, "ad": 2_704}


def _row(name: str, path: Path, kernels: str, tflm: int, work: Path) -> tuple[str, float]:
    res = generate(path, work / f"{name}-{kernels}", kernels=kernels)
    flash = ram = "n/a"
    if shutil.which("arm-none-eabi-gcc"):
        size = cross_build(res.out_dir, work / f"{name}-{kernels}-m4", "cortex-m4")
        flash, ram = f"{size.flash:,}", f"{size.ram:,}"
    ratio = res.peak_ram / tflm
    ref32 = f"{res.peak_ram / TFLM_32BIT[name]:.2f}" if name in TFLM_32BIT else "-"
    fate = "kept" if res.input_preserved else "reused"
    return (f"{name:<14} {kernels:<5} {tflm:>10,} {res.peak_ram:>9,} {ratio:>6.2f} {ref32:>9} {fate:>7} "
            f"{res.peak_ram_with_copies:>11,} {res.peak_ram_with_copies / tflm:>6.2f} {flash:>10} {ram:>9}"), ratio


def _label(p: Path) -> str:
    """A bundle's model is named after the bundle's folder (and its run's), a bare file by its stem."""
    return p.parent.parent.name[:14] if p.name == "model_int8.tflite" and p.parent.name == "bundle" else (
        p.parent.name[:14] if p.name == "model_int8.tflite" else p.stem[:14])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default="fast,dsp", help="kernel sets, comma-separated")
    ap.add_argument("models", nargs="*", help="extra .tflite files (e.g. the zoo's BUNDLE/model_int8.tflite)")
    args = ap.parse_args(argv)
    models = {k: external_model(v) for k, v in EXTERNAL_MODELS.items()}
    models.update({_label(Path(p)): Path(p) for p in args.models})
    print(f"{'model':<14} {'set':<5} {'TFLM arena':>10} {'ours':>9} {'ratio':>6} {'vs TFLM32':>9} {'input':>7} "
          f"{'+ copy I/O':>11} {'ratio':>6} {'flash M4':>10} {'RAM M4':>9}")
    verdicts = []
    with tempfile.TemporaryDirectory() as d:
        for name, path in models.items():
            if not path.is_file():
                print(f"{name}: skipped, {path} not found")
                continue
            tflm = tflm_arena_bytes(path)
            for kernels in args.kernels.split(","):
                line, ratio = _row(name, path, kernels, tflm, Path(d))
                print(line, flush=True)
                if name in MLPERF:
                    verdicts.append((name, kernels, ratio))
    print("TFLM arena: tflite-micro Python package (64-bit host build; input and output tensors inside). ours: "
          "EDGETK_ARENA_SIZE, input and output inside (peak RAM with edgetk_input/edgetk_run/edgetk_output). "
          "input: kept intact through an inference, or its memory reused once read. + copy I/O: with "
          "edgetk_invoke's caller buffers. vs TFLM32: ours / the 32-bit Cortex-M figure in shared/MANIFEST.md. "
          "flash = text+rodata+data, RAM = data+bss (arena included) of the library linked alone for Cortex-M4.")
    print(f"acceptance (issue 15): arena with the input and output <= {GOAL}x TFLite-Micro's arena")
    ok = True
    for name, kernels, ratio in verdicts:
        met = ratio <= GOAL
        ok &= met
        print(f"  {name:<4} {kernels:<5} {ratio:.3f}x -> {'met' if met else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
