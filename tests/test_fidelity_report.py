"""Fidelity arithmetic (against ONNX Runtime's own QuantizeLinear) and the per-stage report of a bundle."""
from __future__ import annotations

import json

import numpy as np
import pytest

from toolkit.export.fidelity import QParams, compare_int, task_metric


def test_quantize_matches_onnxruntime_quantizelinear() -> None:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    q = QParams(0.0371, -7)
    x = np.concatenate([np.linspace(-6, 6, 2001, dtype=np.float32), (np.arange(-140, 140) + 7) * np.float32(0.0371),
                        (np.arange(-20, 20) + 0.5).astype(np.float32) * np.float32(0.0371)]).astype(np.float32)[None]
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "q",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                          [helper.make_tensor_value_info("y", TensorProto.INT8, list(x.shape))],
                          [numpy_helper.from_array(np.float32(q.scale), "s"),
                           numpy_helper.from_array(np.int8(q.zero_point), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(q.quantize(x), y)  # ties to even, saturation
    np.testing.assert_allclose(q.dequantize(y), (y.astype(np.float32) + 7) * np.float32(0.0371), rtol=1e-6)


def test_compare_int_figures() -> None:
    a = np.array([[10, -3, 4], [0, 0, 127]], np.int8)
    b = np.array([[11, -3, 4], [0, 1, 127]], np.int8)
    c = compare_int("classification", a, b)
    assert c["max_lsb_diff"] == 1 and not c["identical"] and c["agreement"] == 1.0
    # cosine of the flattened batches by hand: a·b = 16264, |a|² = 16254, |b|² = 16276
    assert c["rmse_lsb"] == pytest.approx(np.sqrt(2 / 6)) and c["cosine"] == pytest.approx(16264 / np.sqrt(16254 * 16276), rel=1e-12)
    assert compare_int("classification", a, -a)["cosine"] == pytest.approx(-1.0)
    moved = np.array([[11, -3, 4], [127, 0, 0]], np.int8)  # top-1 moves in sample 1 only
    assert compare_int("classification", a, moved)["agreement"] == 0.5
    assert compare_int("classification", a, a)["identical"]


def test_task_metric_top1_and_auc() -> None:
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert task_metric("classification", logits, np.zeros((3, 1)), np.array([0, 1, 1])) == pytest.approx(2 / 3)
    x = np.zeros((4, 3), np.float32)
    recon = np.array([[0.1] * 3, [0.2] * 3, [1.0] * 3, [2.0] * 3], np.float32)
    assert task_metric("anomaly", recon, x, np.array([0, 0, 1, 1])) == 1.0


@pytest.mark.slow
def test_bundle_fidelity_report(exported_bundle) -> None:
    b = exported_bundle("imu-motions")
    fid = json.loads((b / "fidelity.json").read_text())
    for stage in ("torch_vs_onnx_fp32", "fp32_vs_int8_onnx", "int8_onnx_vs_tflite", "int8_onnx_vs_tflite_per_op",
                  "litert_ref_vs_tflm"):
        assert stage in fid
    assert fid["fp32_vs_int8_onnx"]["top1_agreement"] >= 0.95
    md = (b / "fidelity.md").read_text()
    assert "| LiteRT ref ↔ TFLite-Micro | bit-identical |" in md
    assert "op by op" in md and "imu-motions" in md
