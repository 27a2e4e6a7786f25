"""Fuzz the TFLite reader and the code generator's lowering (issue #14): mutated .tflite files (byte flips, 32-bit
word overwrites, cuts, and field mutations through the flatbuffer object API) of the MLPerf Tiny / TFLite-Micro
int8 models in shared/external, the LSTM test model and small models built by toolkit/tflite/build.py.

Property: every input is accepted or refused with one EdgetkError; no other exception, no catch-all message, no
crash (each chunk runs in a child process), no input slower than 20 s. Every --deep-every-th accepted input is
compiled with ASan/UBSan -Werror and must give TFLite-Micro's bytes on seeded inputs (TFLite-Micro must run it).
Prints inputs tried, failures (reproducers under --out) and the slowest input, beside the baseline: the unmutated
seeds through the same check.

    python bench/fuzz_models.py [--n 1000000 | --seconds 600] [--seed 0] [--deep-every 200]
    python bench/fuzz_models.py --replay bench/out/fuzz-tflite/failures/*.tflite   # rerun saved inputs
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.fuzz import bench_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(bench_main("tflite", default_seconds=120, default_deep_every=200))
