"""`edgetk inspect` on every shared .tflite, on a QDQ .onnx, and on truncated / bit-flipped files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from toolkit.cli import main


def _qdq_onnx(path):
    """Quantize -> Dequantize -> Conv(DQ int8 weights) -> Relu -> Gemm -> Quantize -> Dequantize."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array(0.02, np.float32), "s_in"),
        numpy_helper.from_array(np.array(-3, np.int8), "z_in"),
        numpy_helper.from_array(rng.integers(-127, 128, (8, 3, 3, 3)).astype(np.int8), "w_q"),
        numpy_helper.from_array(np.full(8, 0.01, np.float32), "w_s"),
        numpy_helper.from_array(np.zeros(8, np.int8), "w_z"),
        numpy_helper.from_array(rng.standard_normal((8 * 6 * 6, 5)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
        numpy_helper.from_array(np.array(0.1, np.float32), "s_out"),
        numpy_helper.from_array(np.array(7, np.int8), "z_out"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=0),
        helper.make_node("Conv", ["xd", "w"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "fc_w"], ["m"]),
        helper.make_node("QuantizeLinear", ["m", "s_out", "z_out"], ["mq"]),
        helper.make_node("DequantizeLinear", ["mq", "s_out", "z_out"], ["y"]),
    ]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(m, str(path))
    return path


def _inspect(capsys, *argv):
    rc = main(["inspect", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_inspect_every_shared_tflite(external, capsys):
    models = sorted(external.rglob("*.tflite"))
    assert len(models) >= 9
    for p in models:
        rc, out, err = _inspect(capsys, str(p), "--no-arena")
        assert rc == 0, err
        assert "inputs:" in out and "params:" in out and "MACs:" in out


def test_inspect_kws_figures_and_tflm_arena(external, capsys):
    kws = next(external.rglob("kws_ref_model.tflite"))
    rc, out, _ = _inspect(capsys, str(kws), "--json")
    info = json.loads(out)
    assert rc == 0 and info["params"] == 22604 and info["macs"] == 2_656_768
    assert info["ops"] == {"CONV_2D": 5, "DEPTHWISE_CONV_2D": 4, "AVERAGE_POOL_2D": 1, "RESHAPE": 1,
                           "FULLY_CONNECTED": 1, "SOFTMAX": 1}
    assert info["inputs"][0]["zero_point"] == [83] and info["inputs"][0]["shape"] == [1, 49, 10, 1]
    from toolkit.runtimes import tflm_arena_bytes

    assert info["tflm_arena_bytes"] == tflm_arena_bytes(kws) and 20_000 < info["tflm_arena_bytes"] < 30_000  # 24,272
    rc, text, _ = _inspect(capsys, str(kws))
    assert "TFLite-Micro arena:" in text and "scale 0.584703 zero_point 83" in text


def test_inspect_qdq_onnx(tmp_path, capsys):
    rc, out, err = _inspect(capsys, str(_qdq_onnx(tmp_path / "m.onnx")), "--json")
    assert rc == 0, err
    info = json.loads(out)
    assert info["inputs"][0]["scale"] == [pytest.approx(0.02)] and info["inputs"][0]["zero_point"] == [-3]
    assert info["outputs"][0]["zero_point"] == [7]
    assert info["ops"]["QuantizeLinear"] == 2 and info["ops"]["Conv"] == 1
    assert info["params"] == 8 * 27 + 288 * 5
    assert info["macs"] == 8 * 6 * 6 * 27 + 288 * 5


@pytest.mark.parametrize("kind", ["truncated", "bitflip"])
def test_inspect_corrupted_files_give_one_clear_error(external, tmp_path, capsys, kind):
    sources = [next(external.rglob("kws_ref_model.tflite")), _qdq_onnx(tmp_path / "good.onnx")]
    for src in sources:
        data = bytearray(src.read_bytes())
        if kind == "truncated":
            data = data[: len(data) * 2 // 3]
        else:
            data[4 if src.suffix == ".tflite" else 2] ^= 0x10
        bad = tmp_path / f"bad{src.suffix}"
        bad.write_bytes(bytes(data))
        rc, out, err = _inspect(capsys, str(bad), "--no-arena")
        assert rc == 2, (src.suffix, out)
        assert "error:" in err and "fix:" in err and "Traceback" not in err


def test_inspect_unknown_format(tmp_path, capsys):
    p = tmp_path / "m.bin"
    p.write_bytes(b"xx")
    rc, _, err = _inspect(capsys, str(p))
    assert rc == 2 and "unknown format" in err


@pytest.mark.slow
def test_inspect_exported_int8_onnx_says_dyadic(exported_bundle, capsys):
    """An exported int8 ONNX file carries what dyadic requantization did; inspect prints it."""
    b = exported_bundle("image-digits")
    rc, out, err = _inspect(capsys, str(b / "model_int8.onnx"))
    assert rc == 0, err
    man = json.loads((b / "manifest.json").read_text())["requantization"]
    assert (f"fidelity.md measures it): {man['dyadic_channels']} channels, 0 inexact, "
            f"1 means, 3 Add scale groups") in out
    assert "integer-exact with TFLite" not in out   # a claim only a measurement (the bundle's fidelity.md) may make
    rc, out, _ = _inspect(capsys, str(b / "model_fp32.onnx"))
    assert rc == 0 and "requantization" not in out
