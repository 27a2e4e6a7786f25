"""Bad export inputs give one clear EdgetkError (cause + fix), never a traceback, and no half bundle."""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toolkit.errors import EdgetkError
from toolkit.export import export_run


@pytest.fixture()
def imu_run(trained_run, tmp_path: Path) -> Path:
    """A private copy of the trained imu-motions run, free to damage."""
    return Path(shutil.copytree(trained_run("imu-motions"), tmp_path / "run"))


def _export_fails(run: Path, *needles: str) -> EdgetkError:
    out = run.parent / "bundle"
    with pytest.raises(EdgetkError) as e:
        export_run(run, out)
    msg = str(e.value)
    assert e.value.fix, msg
    for n in needles:
        assert n in msg, msg
    assert not out.exists() and not list(run.parent.glob(".bundle*")), "a failed export left files behind"
    return e.value


def _flip_weight_exponent(path: Path, tensor_suffix: str = "weight") -> None:
    """Set the top exponent bit of the first float of the first conv weight (x2^128: a 'cosmic ray')."""
    raw = bytearray(path.read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    name = next(k for k, v in header.items() if k != "__metadata__" and k.endswith(tensor_suffix)
                and len(v["shape"]) == 4)
    start = 8 + n + header[name]["data_offsets"][0]
    raw[start + 3] ^= 0x40
    path.write_bytes(bytes(raw))


def test_missing_weights(imu_run: Path) -> None:
    (imu_run / "model.safetensors").unlink()
    _export_fails(imu_run, "model.safetensors")


def test_truncated_weights(imu_run: Path) -> None:
    p = imu_run / "model.safetensors"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    _export_fails(imu_run, "model.safetensors")


@pytest.mark.slow
def test_bit_flipped_weights(imu_run: Path) -> None:
    _flip_weight_exponent(imu_run / "model.safetensors")
    _export_fails(imu_run, "model.safetensors")


def test_corrupted_metrics_json(imu_run: Path) -> None:
    p = imu_run / "metrics.json"
    p.write_text(p.read_text()[:20])
    _export_fails(imu_run, "metrics.json is not valid JSON")


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(EdgetkError, match="run folder not found"):
        export_run(tmp_path / "nope")


def test_bad_options_fail_before_work(tmp_path: Path) -> None:
    with pytest.raises(EdgetkError, match="unknown export format"):
        export_run(tmp_path, formats=("onnx", "coreml"))
    with pytest.raises(EdgetkError, match="unknown quantizer"):
        export_run(tmp_path, quantizer="tensorrt")
    with pytest.raises(EdgetkError, match="calib must be positive"):
        export_run(tmp_path, calib=0)


def _corrupt_onnx(src: Path, dst: Path, how: str) -> Path:
    raw = bytearray(src.read_bytes())
    if how == "truncated":
        raw = raw[: len(raw) * 6 // 10]
    elif how == "bit-flipped":
        raw[0] ^= 0xFF  # the first field tag: an invalid protobuf wire type
    else:
        raw = bytearray(b"not an onnx model at all")
    dst.write_bytes(bytes(raw))
    return dst


@pytest.mark.parametrize("how", ["truncated", "bit-flipped", "garbage"])
def test_corrupted_onnx_given_to_quantization(exported_bundle, tmp_path: Path, how: str) -> None:
    from toolkit.quant import quantize_onnx

    bad = _corrupt_onnx(exported_bundle("imu-motions") / "model_fp32.onnx", tmp_path / "m.onnx", how)
    with pytest.raises(EdgetkError, match="not a valid ONNX model") as e:
        quantize_onnx(bad, np.zeros((4, 6, 1, 100), np.float32))
    assert "re-export" in e.value.fix


def test_cli_reports_error_without_traceback(imu_run: Path) -> None:
    (imu_run / "model.safetensors").unlink()
    proc = subprocess.run([sys.executable, "-m", "toolkit", "export", str(imu_run)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "edgetk export: error:" in proc.stderr and "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unlowerable_node_names_node_op_and_supported_list(tmp_path: Path) -> None:
    import torch
    from sklearn.datasets import load_digits

    from toolkit.export.lower import lower_qdq
    from toolkit.export.onnx_fp32 import export_fp32
    from toolkit.quant import quantize_onnx

    class Gated(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.conv(x))

    torch.manual_seed(0)
    x = (load_digits().images[:64, None] / 16.0).astype(np.float32)
    export_fp32(Gated().eval(), x[0], tmp_path / "g.onnx")
    with pytest.raises(EdgetkError) as e:
        lower_qdq(quantize_onnx(tmp_path / "g.onnx", x, "ort"))
    msg = str(e.value)
    assert "Sigmoid" in msg and "node" in msg
    assert "Conv" in e.value.fix and "Gemm" in e.value.fix
