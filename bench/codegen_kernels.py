"""Host latency of each registered kernel set against the reference set, measured in the same run.

Per model: ms per inference of the generated C compiled with the host gcc -O2 (best of 3 batches of
50 inputs), for every kernel set, and the speed-up over `reference`; outputs are checked
byte-identical between sets. Host figures only: Cortex-M figures come from `edgetk profile`.
Usage: python bench/codegen_kernels.py [extra.tflite ...]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from toolkit.codegen import KERNEL_SETS
from toolkit.codegen import parity as par
from toolkit.codegen.host import run_host
from toolkit.paths import external_model
from toolkit.tflite import read_model

N, REPEATS = 50, 3


def _time(exe: Path, x: np.ndarray, out_size: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(REPEATS):
        t = time.perf_counter()
        out = run_host(exe, x, out_size)
        best = min(best, time.perf_counter() - t)
    return best / len(x) * 1e3, out


def _row(name: str, path: Path, work: Path) -> str:
    g = read_model(path)
    x = par.inputs_for(name, g, N)
    cells, ref_ms, ref_out = [], None, None
    for k in sorted(KERNEL_SETS, key=lambda k: k != "reference"):
        ms, out = _time(par.build_runner(path, work / name, kernels=k), x, g.tensor(g.outputs[0]).size)
        if k == "reference":
            ref_ms, ref_out = ms, out
        same = "=" if np.array_equal(out, ref_out) else "DIFFERS"
        cells.append(f"{k} {ms:8.3f} ms ({ref_ms / ms:4.2f}x, {same})")
    return f"{name:<14} " + "   ".join(cells)


def main(argv: list[str]) -> int:
    models = {k: external_model(v) for k, v in par.EXTERNAL_MODELS.items()}
    models.update({Path(p).stem: Path(p) for p in argv})
    print(f"host latency per inference, gcc -O2, best of {REPEATS} x {N} inputs; (speed-up vs reference, "
          "outputs equal to reference)")
    with tempfile.TemporaryDirectory() as d:
        for name, path in models.items():
            print(_row(name, path, Path(d)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
