"""Fuzz `edgetk inspect` on ONNX models (issue #14): a float and a QDQ int8 model with edgetk's metadata, mutated
byte-wise and field-wise (edgetk.requantization.info, initializer bytes/types/dims, node inputs/attributes, opset).

Property: every input is summarized (a corrupted metadata entry is a warning) or refused with one EdgetkError; no
other exception, no crash (each chunk runs in a child process). Prints inputs tried, failures (reproducers under
--out) and the slowest input, beside the baseline: the unmutated seeds through the same check.

    python bench/fuzz_onnx.py [--n 1000000 | --seconds 600] [--seed 0]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.fuzz import bench_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(bench_main("onnx", default_seconds=60))
