"""`edgetk import` refuses bad input with ONE clear EdgetkError (cause + fix), never a traceback: a file that is
neither ONNX nor TFLite, truncated files, an opset the converter cannot lift, unsupported ops (all of them listed,
with index and type), several inputs, data that does not fit the model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolkit.errors import EdgetkError
from toolkit.importer import ImportConfig, import_model


def _model(nodes, inits=(), inputs=(("x", [1, 4]),), opset: int = 13):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return m


def _save(m, path: Path) -> Path:
    path.write_bytes(m.SerializeToString())
    return path


def _gemm_model():
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    return _model([helper.make_node("Gemm", ["x", "w"], ["y"])], [w])


def _err(tmp_path: Path, path: Path, cfg: ImportConfig | None = None) -> str:
    with pytest.raises(EdgetkError) as e:
        import_model(path, tmp_path / "out", cfg)
    assert not (tmp_path / "out").exists()  # nothing half-written
    return str(e.value)


def test_neither_onnx_nor_tflite(tmp_path) -> None:
    p = tmp_path / "model.bin"
    p.write_bytes(b"hello, this is not a model\n")
    msg = _err(tmp_path, p)
    assert "neither an ONNX model nor a TFLite flatbuffer" in msg and "fix:" in msg


def test_truncated_onnx(tmp_path) -> None:
    data = _gemm_model().SerializeToString()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) - 9])
    msg = _err(tmp_path, p)
    assert "truncated or corrupted ONNX" in msg and "fix:" in msg


def test_truncated_tflite(tmp_path, external) -> None:
    src = external / "mlperf_tiny/benchmark/training/keyword_spotting/trained_models/kws_ref_model_float32.tflite"
    p = tmp_path / "cut.tflite"
    p.write_bytes(src.read_bytes()[:20000])
    msg = _err(tmp_path, p)
    assert "truncated or corrupted" in msg or "lies past the end" in msg, msg


def test_opset_the_converter_cannot_lift(tmp_path) -> None:
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(np.ones(4, np.float32), n) for n in ("s", "b", "m", "v")]
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], spatial=0)
    msg = _err(tmp_path, _save(_model([bn], inits, inputs=(("x", [1, 4, 2, 2]),), opset=7), tmp_path / "bn.onnx"))
    assert "cannot lift opset 7 to 18" in msg and "re-export" in msg
    old = _model([helper.make_node("Relu", ["x"], ["y"])], opset=5)
    assert "opset 7 and later" in _err(tmp_path, _save(old, tmp_path / "old.onnx"))


def test_every_unsupported_op_is_listed(tmp_path) -> None:
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    k = numpy_helper.from_array(np.full(4, 2.0, np.float32), "k")
    nodes = [helper.make_node("Gemm", ["x", "w"], ["a"]), helper.make_node("Sigmoid", ["a"], ["b"]),
             helper.make_node("Mul", ["b", "a"], ["c"]), helper.make_node("Tanh", ["c"], ["d"]),
             helper.make_node("Gemm", ["d", "w"], ["e"]), helper.make_node("Sub", ["e", "k"], ["y"])]
    msg = _err(tmp_path, _save(_model(nodes, [w, k]), tmp_path / "ops.onnx"))
    assert "4 node(s) edgetk cannot quantize" in msg, msg
    for i, op in ((1, "Sigmoid"), (2, "Mul"), (3, "Tanh"), (5, "Sub")):
        assert f"#{i} {op}" in msg, msg
    assert "edgetk lowers:" in msg and "Sub: an input normalisation" in msg


def test_several_inputs(tmp_path) -> None:
    from onnx import helper

    m = _model([helper.make_node("Add", ["x", "z"], ["y"])], inputs=(("x", [1, 4]), ("z", [1, 4])))
    msg = _err(tmp_path, _save(m, tmp_path / "two.onnx"))
    assert "has 2 inputs" in msg and "one input tensor" in msg


def test_data_that_does_not_fit(tmp_path) -> None:
    p = _save(_gemm_model(), tmp_path / "gemm.onnx")
    np.save(tmp_path / "wrong.npy", np.zeros((5, 3), np.float32))
    assert "the model takes [N, 4]" in _err(tmp_path, p, ImportConfig(calib=str(tmp_path / "wrong.npy")))
    np.save(tmp_path / "q.npy", np.zeros((5, 4), np.int8))
    assert "--input-quant" in _err(tmp_path, p, ImportConfig(calib=str(tmp_path / "q.npy")))
    assert "no such file" in _err(tmp_path, p, ImportConfig(test=str(tmp_path / "missing.npz")))
    np.savez(tmp_path / "noy.npz", inputs=np.zeros((5, 4), np.float32))
    assert "has no array 'x'" in _err(tmp_path, p, ImportConfig(calib=str(tmp_path / "noy.npz")))


def test_unsupported_tflite_ops_listed(tmp_path) -> None:
    """A float .tflite with TANH and MUL: both named with their operator index."""
    from toolkit.tflite.build import OpSpec, TensorSpec, build_model

    f = dict(dtype="float32", scale=None)
    t = [TensorSpec((1, 4), **f), TensorSpec((4, 4), data=np.eye(4, dtype=np.float32), **f),
         TensorSpec((1, 4), **f), TensorSpec((1, 4), **f), TensorSpec((1, 4), **f)]
    ops = [OpSpec("FULLY_CONNECTED", (0, 1, -1), (2,)), OpSpec("TANH", (2,), (3,)), OpSpec("MUL", (3, 2), (4,))]
    p = tmp_path / "tanh.tflite"
    p.write_bytes(build_model(t, ops, [0], [4]))
    msg = _err(tmp_path, p)
    assert "2 operator(s)" in msg and "#1 TANH" in msg and "#2 MUL" in msg and "fix:" in msg


def test_cli_exit_2_without_traceback(tmp_path, capsys) -> None:
    from toolkit.cli import main

    p = tmp_path / "x.txt"
    p.write_text("not a model")
    assert main(["import", str(p), "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgetk import: error:") and "Traceback" not in err and "fix:" in err


def test_cli_json_summary_says_random(tmp_path, capsys) -> None:
    import json

    from toolkit.cli import main

    p = _save(_gemm_model(), tmp_path / "gemm.onnx")
    assert main(["import", str(p), "-o", str(tmp_path / "b"), "--json", "--kind", "regression", "--formats", "onnx,tflite"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["random_inputs"] and doc["data"]["calib"]["source"] == doc["data"]["test"]["source"] == "random"
    assert doc["kind"] == "regression" and doc["float_vs_int8"]["rel_rmse"] < 0.02 and doc["params"] == 16 + 4  # the int8 Linear carries a (zero) bias
