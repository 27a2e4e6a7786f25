"""`edgetk export RUN_DIR` end to end through the console entry point (default bundle folder, summary)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_cli_export_writes_default_bundle(trained_run, tmp_path: Path) -> None:
    run = Path(shutil.copytree(trained_run("imu-motions"), tmp_path / "run"))
    proc = subprocess.run([sys.executable, "-m", "toolkit", "export", str(run), "--quantizer", "ort", "--calib", "32"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    bundle = run / "bundle"
    assert f"bundle: {bundle}" in proc.stdout and "LiteRT ref ↔ TFLite-Micro | bit-identical" in proc.stdout
    man = json.loads((bundle / "manifest.json").read_text())
    assert man["export"]["quantizer"] == "ort" and man["export"]["calib"] == 32
    assert "TFLM arena" in proc.stdout and f"{man['tflm_arena_bytes']:,} B" in proc.stdout
