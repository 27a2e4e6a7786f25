"""Arena and flash of the generated C vs TFLite-Micro, per model, measured in the same run.

Prints, per model: TFLite-Micro's arena (its recording allocator, this host's build), our static
arena, their ratio, our arena plus the caller's input/output buffers (which TFLM keeps inside its
arena) and that ratio, and flash/RAM of the Cortex-M4 build from arm-none-eabi-size.
Usage: python bench/codegen_memory.py [extra.tflite ...]   (bundles: BUNDLE/model_int8.tflite)
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from toolkit.codegen import generate
from toolkit.codegen.cross import cross_build
from toolkit.codegen.parity import EXTERNAL_MODELS
from toolkit.paths import external_model
from toolkit.runtimes import tflm_arena_bytes
from toolkit.tflite import read_model

# TFLM minimal arena on a 32-bit Cortex-M build, from shared/MANIFEST.md (for reference)
TFLM_32BIT = {"kws": 22_784, "ic": 54_352, "ad": 2_704}


def _row(name: str, path: Path, work: Path) -> str:
    g = read_model(path)
    io = g.tensor(g.inputs[0]).nbytes + g.tensor(g.outputs[0]).nbytes
    res = generate(path, work / name)
    tflm = tflm_arena_bytes(path)
    flash = ram = "n/a"
    if shutil.which("arm-none-eabi-gcc"):
        size = cross_build(work / name, work / f"{name}-m4", "cortex-m4")
        flash, ram = f"{size.flash:,}", f"{size.ram:,}"
    ref32 = f"{res.arena_size / TFLM_32BIT[name]:.2f}" if name in TFLM_32BIT else "-"
    return (f"{name:<14} {tflm:>10,} {res.arena_size:>9,} {res.arena_size / tflm:>6.2f} "
            f"{res.arena_size + io:>10,} {(res.arena_size + io) / tflm:>6.2f} {ref32:>9} {flash:>10} {ram:>9}")


def _label(p: Path) -> str:
    """A bundle's model is named after the bundle's folder (and its run's), a bare file by its stem."""
    return p.parent.parent.name[:14] if p.name == "model_int8.tflite" and p.parent.name == "bundle" else (
        p.parent.name[:14] if p.name == "model_int8.tflite" else p.stem[:14])


def main(argv: list[str]) -> int:
    models = {k: external_model(v) for k, v in EXTERNAL_MODELS.items()}
    models.update({_label(Path(p)): Path(p) for p in argv})
    print(f"{'model':<14} {'TFLM arena':>10} {'ours':>9} {'ratio':>6} {'ours+I/O':>10} {'ratio':>6} "
          f"{'vs TFLM32':>9} {'flash M4':>10} {'RAM M4':>9}")
    with tempfile.TemporaryDirectory() as d:
        for name, path in models.items():
            print(_row(name, path, Path(d)), flush=True)
    print("TFLM arena: tflite-micro Python package (64-bit host build; includes I/O tensors). "
          "ours: EDGETK_ARENA_SIZE (I/O buffers are the caller's). vs TFLM32: ours / the 32-bit "
          "Cortex-M figure in shared/MANIFEST.md. flash = text+rodata+data, RAM = data+bss (arena "
          "included) of the stand-alone library linked for Cortex-M4.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
