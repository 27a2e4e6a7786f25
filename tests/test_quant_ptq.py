"""Quantizers: onnxruntime quantize_static (with the C library format), QAT, and the QDQ normal form."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from toolkit.export import export_run


def _fid(bundle: Path) -> dict:
    return json.loads((bundle / "fidelity.json").read_text())


@pytest.mark.slow
def test_ort_quantizer_with_c_library(trained_run, tmp_path: Path) -> None:
    from toolkit.codegen.host import compile_host, run_host

    b = export_run(trained_run("imu-motions"), tmp_path / "bundle", quantizer="ort", formats=("onnx", "tflite", "c"))
    fid, man = _fid(b), json.loads((b / "manifest.json").read_text())
    assert man["export"]["quantizer"] == "ort"
    assert 100 * (fid["metrics"]["onnx_fp32"] - fid["metrics"]["tflite_int8"]) <= 1.5
    assert fid["litert_ref_vs_tflm"]["identical"] and fid["int8_onnx_vs_tflite_per_op"]["max_lsb_diff"] <= 1
    assert "c/edgetk_model.h" in man["files"] and "c/edgetk_model.c" in man["files"]
    require_tool("gcc")
    x, ref = np.load(b / "test_x_int8.npy"), np.load(b / "test_out_int8.npy")
    out = run_host(compile_host(b / "c", tmp_path / "host"), x, ref[0].size)
    np.testing.assert_array_equal(out.reshape(ref.shape), ref)  # generated C == TFLite-Micro


@pytest.mark.slow
def test_qat_produces_the_same_three_formats(trained_run, exported_bundle, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    b = export_run(trained_run("imu-motions"), tmp_path / "bundle", qat=True)
    for name in ("model_fp32.onnx", "model_int8.onnx", "model_int8.tflite"):
        assert (b / name).stat().st_size > 1000
    fid = _fid(b)
    assert 100 * (fid["metrics"]["run_recorded"] - fid["metrics"]["tflite_int8"]) <= 1.5
    assert fid["litert_ref_vs_tflm"]["identical"]

    def conv_weights(p: Path) -> np.ndarray:
        g = onnx.load(str(p)).graph
        conv = next(n for n in g.node if n.op_type == "Conv")
        return numpy_helper.to_array(next(i for i in g.initializer if i.name == conv.input[1]))

    ptq = conv_weights(exported_bundle("imu-motions") / "model_fp32.onnx")
    qat = conv_weights(b / "model_fp32.onnx")
    assert ptq.shape == qat.shape and not np.array_equal(ptq, qat), "QAT did not change the weights"


@pytest.mark.slow
def test_int8_onnx_is_in_tflite_normal_form(exported_bundle) -> None:
    import onnx

    from toolkit.quant.dyadic import MEAN_DOC, is_dyadic, output_q
    from toolkit.quant.graph import OnnxGraph, qparams
    from toolkit.quant.qdq import source_q

    g = OnnxGraph(onnx.load(str(exported_bundle("image-digits") / "model_int8.onnx")))
    assert is_dyadic(g.proto)
    kinds = [n.op_type for n in g.proto.graph.node]
    assert kinds.count("Conv") >= 5 and kinds.count("Gemm") == 1 and kinds.count("QuantizeLinear") >= 8  # not vacuous
    for n in g.proto.graph.node:
        if n.op_type == "QuantizeLinear":
            assert qparams(g, n)[1].dtype == np.int8, n.name  # uint8 activations were shifted to int8
        if n.op_type in ("Conv", "Gemm"):
            s_in = qparams(g, source_q(g, n.input[0]))[0]  # through Reshape/MaxPool to its QuantizeLinear
            s_w = qparams(g, g.producer[n.input[1]])[0]
            m = s_in.astype(np.float64) * s_w / qparams(g, output_q(g, n))[0]
            excess = m * 2.0 ** np.round(-np.log2(m)) - 1
            assert np.all((excess > 0) & (excess < 2e-3)), (n.name, excess)  # dyadic: 2^-k plus a hair
            if n.doc_string == MEAN_DOC:  # the even-sized global mean as a bias-free depthwise conv
                continue
            b_dq = g.producer[n.input[2]]
            assert g.const(b_dq.input[0]).dtype == np.int32
            np.testing.assert_allclose(qparams(g, b_dq)[0], s_in * s_w, rtol=1e-6)
        if n.op_type == "Add":  # one scale across an Add: an exact integer sum
            scales = {float(qparams(g, q)[0]) for q in [source_q(g, i) for i in n.input] + [output_q(g, n)]}
            assert len(scales) == 1, (n.name, scales)
    assert g.producer[g.outputs[0]].op_type == "DequantizeLinear"


def test_calibration_set_from_training_split() -> None:
    from toolkit.quant import calibration_set

    x = np.arange(50, dtype=np.float32).reshape(50, 1)
    a, b = calibration_set(x, 20, seed=3), calibration_set(x, 20, seed=3)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 20 and set(a.ravel()) <= set(x.ravel())
    assert len(calibration_set(x, 500)) == 50
