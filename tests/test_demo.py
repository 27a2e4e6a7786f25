"""`edgetk demo` — what `make demo` runs — end to end on the default task: train → int8 → ONNX/TFLite/C →
firmware on the emulated Cortex-M4 → report, as a real subprocess."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_tool


@pytest.mark.slow
def test_demo_runs_the_whole_spine(tmp_path: Path) -> None:
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "toolkit", "demo", "--task", "imu-motions", "--samples", "5",
                           "--set", "train.epochs=8", "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    for step in ("[1/4] train", "[2/4] quantize", "[3/4] build firmware", "[4/4] report"):
        assert step in text, text
    assert "ONNX Runtime vs TFLite bit-identical, TFLite vs TFLite-Micro bit-identical" in text
    rep = json.loads((out / "profile" / "report.json").read_text())
    assert rep["ran_on"] == "qemu-m4" and rep["fidelity"]["bit_exact"] and rep["fidelity"]["samples"] == 5
    assert "QEMU" in json.dumps(rep["latency"])  # a simulated figure says it is simulated
    assert (out / "profile" / "report.html").is_file() and (out / "bundle" / "c" / "edgetk_model.c").is_file()
