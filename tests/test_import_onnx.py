"""`edgetk import` of float ONNX models written the way other frameworks write them, built here with onnx.helper
from a small CNN trained on scikit-learn's digits (real weights, real data): opset 7 and 8, MatMul + Add instead of
Gemm, Conv + Add instead of a bias, auto_pad SAME_UPPER, weights behind a Reshape and a Transpose, initializers
listed as graph inputs, a dynamic batch, BatchNormalization, Dropout, an NHWC input with its Transpose.

Each bundle: int8 top-1 agrees with the float model on >= 99 % of the digits test split, ONNX int8 and TFLite give
the same integers, the generated C equals TFLite-Micro byte for byte, `edgetk validate --target qemu-m4` passes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # [N, 1, 8, 8]
    y = d.target.astype(np.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _train(model, epochs: int, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    xtr, ytr, _, _ = _digits()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    gen = torch.Generator().manual_seed(seed)
    X, Y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[idx]), Y[idx]).backward()
            opt.step()
    return {k: v.detach().numpy().copy() for k, v in model.eval().state_dict().items()}


@pytest.fixture(scope="module")
def weights(one_torch_thread):
    """Two small digit classifiers trained for a few seconds: a plain CNN and one with BatchNorm."""
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10))
    torch.manual_seed(1)
    bn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Flatten(), nn.Linear(128, 10))
    return {"cnn": _train(cnn, 30), "bn": _train(bn, 30, seed=1)}


def cnn_opset8(w: dict[str, np.ndarray], opset: int = 8):
    """The plain CNN as an old exporter writes it: Conv + Add (bias as a separate Add), auto_pad SAME_UPPER, the
    second Conv's weights stored flat behind a Reshape, MatMul + Add instead of Gemm, initializers also listed
    as graph inputs (IR 3), a dynamic batch dimension."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(w["0.weight"], "W1"), numpy_helper.from_array(w["0.bias"].reshape(1, 8, 1, 1), "b1"),
             numpy_helper.from_array(w["2.weight"].reshape(-1), "W2flat"),
             numpy_helper.from_array(np.array(w["2.weight"].shape, np.int64), "W2shape"),
             numpy_helper.from_array(w["2.bias"], "b2"), numpy_helper.from_array(w["5.weight"].T.copy(), "W3"),
             numpy_helper.from_array(w["5.bias"], "b3"), numpy_helper.from_array(w["7.weight"].T.copy(), "W4"),
             numpy_helper.from_array(w["7.bias"], "b4")]
    nodes = [helper.make_node("Conv", ["x", "W1"], ["c1"], kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
             helper.make_node("Add", ["c1", "b1"], ["c1b"]), helper.make_node("Relu", ["c1b"], ["r1"]),
             helper.make_node("Reshape", ["W2flat", "W2shape"], ["W2"]),
             helper.make_node("Conv", ["r1", "W2", "b2"], ["c2"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]), helper.make_node("Flatten", ["r2"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "W3"], ["m3"]), helper.make_node("Add", ["m3", "b3"], ["a3"]),
             helper.make_node("Relu", ["a3"], ["r3"]),
             helper.make_node("MatMul", ["r3", "W4"], ["m4"]), helper.make_node("Add", ["m4", "b4"], ["y"])]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])]
    ins += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    g = helper.make_graph(nodes, "cnn", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="handwritten")
    m.ir_version = 3
    onnx.checker.check_model(m)
    return m


def bn_opset7_nhwc(w: dict[str, np.ndarray]):
    """The BatchNorm CNN at opset 7 with an NHWC input: Transpose(0, 3, 1, 2) first, Conv without bias,
    BatchNormalization, MaxPool, Flatten, Dropout, Gemm whose weights sit behind a Transpose."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(w["0.weight"], "W1")]
    inits += [numpy_helper.from_array(w[f"1.{k}"], f"bn_{k}") for k in ("weight", "bias", "running_mean", "running_var")]
    inits += [numpy_helper.from_array(w["5.weight"].T.copy(), "W2t"), numpy_helper.from_array(w["5.bias"], "b2")]
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["xt", "W1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c1", "bn_weight", "bn_bias", "bn_running_mean", "bn_running_var"],
                              ["n1"], epsilon=1e-5),
             helper.make_node("Relu", ["n1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p1"], ["f"], axis=1),
             helper.make_node("Dropout", ["f"], ["d"], ratio=0.5),
             helper.make_node("Transpose", ["W2t"], ["W2"], perm=[1, 0]),
             helper.make_node("Gemm", ["d", "W2", "b2"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 7)], producer_name="handwritten")
    m.ir_version = 3
    m.graph.input.extend([helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits])
    onnx.checker.check_model(m)
    return m


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    """The digits splits as .npz (NCHW and NHWC)."""
    d = tmp_path_factory.mktemp("digits")
    xtr, ytr, xte, yte = _digits()
    for name, x in (("nchw", lambda a: a), ("nhwc", lambda a: a.transpose(0, 2, 3, 1))):
        np.savez(d / f"train_{name}.npz", x=x(xtr), y=ytr)
        np.savez(d / f"test_{name}.npz", x=x(xte), y=yte)
    return d / "train_nchw.npz", d / "test_nchw.npz", d / "train_nhwc.npz", d / "test_nhwc.npz"


@pytest.fixture(scope="module")
def bundles(weights, digits_npz, tmp_path_factory) -> dict[str, Path]:
    """Each handwritten model imported by the CLI (the opset-8 CNN with NNCF, the opset-7 BN model with onnxruntime)."""
    import onnx

    from toolkit.cli import main

    d = tmp_path_factory.mktemp("import-onnx")
    tr, te, tr_hwc, te_hwc = digits_npz
    onnx.save(cnn_opset8(weights["cnn"]), d / "cnn8.onnx")
    onnx.save(bn_opset7_nhwc(weights["bn"]), d / "bn7.onnx")
    assert main(["import", str(d / "cnn8.onnx"), "-o", str(d / "b-cnn8"), "--calib", str(tr), "--test", str(te),
                 "--labels", ",".join(map(str, range(10)))]) == 0
    assert main(["import", str(d / "bn7.onnx"), "-o", str(d / "b-bn7"), "--calib", str(tr_hwc), "--test", str(te_hwc),
                 "--quantizer", "ort", "--formats", "onnx,tflite"]) == 0
    return {"cnn8": d / "b-cnn8", "bn7": d / "b-bn7", "dir": d}


def _load(b: Path) -> tuple[dict, dict]:
    return json.loads((b / "manifest.json").read_text()), json.loads((b / "fidelity.json").read_text())


@pytest.mark.parametrize("name", ["cnn8", "bn7"])
def test_int8_agrees_with_the_float_model_on_real_digits(bundles, name: str) -> None:
    man, fid = _load(bundles[name])
    agree = fid["float_vs_int8_tflite"]
    print(f"{name}: int8 top-1 agreement with the float model {100 * agree['top1_agreement']:.2f} % on "
          f"{agree['n']} digits; float top-1 {100 * fid['metrics']['source_fp32']:.2f} %, "
          f"TFLite int8 {100 * fid['metrics']['tflite_int8']:.2f} %")
    assert agree["n"] == 397 and agree["top1_agreement"] >= 0.99
    assert fid["metrics"]["source_fp32"] >= 0.85  # the weights do something real
    assert fid["source_vs_onnx_fp32"]["max_abs_diff"] < 1e-4  # the canonical graph computes the source's function
    assert fid["int8_onnx_vs_tflite"]["identical"] and fid["litert_ref_vs_tflm"]["identical"]
    assert fid["int8_onnx_vs_tflite_per_op"]["max_lsb_diff"] == 0
    assert man["source"]["kind"] == "imported model" and man["source"]["format"] == "onnx"
    assert man["data"]["calib"]["source"] == man["data"]["test"]["source"] == "npz" and not man["data"]["random"]
    assert man["input"]["dtype"] == "int8" and man["kind"] == "classification"
    assert np.load(bundles[name] / "test_x_int8.npy").shape == (397, 8, 8, 1)


def test_every_rewrite_is_recorded(bundles) -> None:
    steps = " | ".join(_load(bundles["cnn8"])[0]["source"]["steps"])
    for what in ("batch dimension 'N' fixed to 1", "opset 8 lifted to 18", "initializers listed as graph inputs",
                 "auto_pad SAME_UPPER"):
        assert what in steps, steps
    man = _load(bundles["bn7"])[0]
    steps = " | ".join(man["source"]["steps"])
    assert "opset 7 lifted to 18" in steps and "NHWC input" in steps and man["source"]["input_layout"] == "NHWC"
    assert man["export"]["quantizer"] == "ort"
    import onnx

    ops = {n.op_type for n in onnx.load(str(bundles["bn7"] / "model_fp32.onnx")).graph.node}
    assert ops <= {"Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Identity"}, ops  # BN folded, Dropout/Transposes gone
    ops = {n.op_type for n in onnx.load(str(bundles["cnn8"] / "model_fp32.onnx")).graph.node}
    assert "MatMul" not in ops and "Add" not in ops and "Gemm" in ops


@pytest.mark.parametrize("name", ["cnn8", "bn7"])
def test_generated_c_equals_tflite_micro(bundles, name: str, tmp_path) -> None:
    require_tool("gcc")
    from toolkit.codegen.parity import check

    x = np.load(bundles[name] / "test_x_int8.npy")[:100]
    p = check(bundles[name] / "model_int8.tflite", x, tmp_path, kernels="fast")
    assert p.identical == len(x) and p.max_diff == 0
    np.testing.assert_array_equal(p.ref.reshape(len(x), -1), np.load(bundles[name] / "test_out_int8.npy")[:100])


def test_bundle_loads_and_validates_on_qemu(bundles, tmp_path, capsys) -> None:
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from toolkit.cli import main
    from toolkit.hil.bundle import load_bundle

    b = load_bundle(bundles["cnn8"])
    assert b.c_dir is not None and b.y is not None and len(b.x) == 397 and b.manifest["labels"][3] == "3"
    rc = main(["validate", str(bundles["cnn8"]), "--target", "qemu-m4", "--samples", "20", "-o", str(tmp_path / "v"),
               "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["verdict"] == "pass" and doc["ran_on"] == "qemu-m4", doc


def test_inspect_counts_weights_behind_reshape_and_matmul(bundles) -> None:
    """Hand counts of the opset-8 CNN: conv1 8·1·3·3 + 8, conv2 16·8·3·3 + 16 (stored flat behind a Reshape),
    fc 256·32 + 32 and 32·10 + 10 (MatMul + Add); MACs: 8·8·8 outputs × 9, 16·4·4 × 72, 256·32, 32·10."""
    from toolkit.commands.inspect import inspect_onnx

    params = (8 * 9 + 8) + (16 * 8 * 9 + 16) + (256 * 32 + 32) + (32 * 10 + 10)
    macs = 8 * 8 * 8 * 9 + 16 * 4 * 4 * 72 + 256 * 32 + 32 * 10
    for f in ("cnn8.onnx", "b-cnn8/model_fp32.onnx", "b-cnn8/model_int8.onnx"):
        info = inspect_onnx(bundles["dir"] / f)
        assert (info["params"], info["macs"]) == (params, macs), f
    man = _load(bundles["cnn8"])[0]
    assert (man["params"], man["macs"]) == (params, macs)  # the TFLite lowering's own counts agree


def test_opset7_version_of_the_cnn_imports_too(weights, digits_npz, tmp_path) -> None:
    """The same CNN declared at opset 7 (Add, Conv, MatMul at their opset-7 versions): lifted and imported."""
    import onnx

    from toolkit.importer import ImportConfig, import_model

    onnx.save(cnn_opset8(weights["cnn"], opset=7), tmp_path / "cnn7.onnx")
    tr, te, _, _ = digits_npz
    b = import_model(tmp_path / "cnn7.onnx", tmp_path / "b", ImportConfig(calib=str(tr), test=str(te), test_n=100,
                                                                          formats=("onnx", "tflite")))
    man, fid = _load(b)
    assert "opset 7 lifted to 18" in " ".join(man["source"]["steps"]) and man["source"]["opset"] == 7
    assert fid["float_vs_int8_tflite"]["top1_agreement"] >= 0.99 and fid["int8_onnx_vs_tflite"]["identical"]


def test_inspect_counts_weights_behind_cast_and_transpose(tmp_path) -> None:
    """Hand counts: MatMul with float16 weights behind a Cast (4·6, no bias), then Gemm(transB=1) whose [3, 6]
    weights are stored transposed behind a Transpose, plus its bias 3; MACs 4·6 + 6·3 per sample."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from toolkit.commands.inspect import inspect_onnx

    inits = [numpy_helper.from_array(np.ones((4, 6), np.float16), "w16"),
             numpy_helper.from_array(np.ones((6, 3), np.float32), "w2t"), numpy_helper.from_array(np.zeros(3, np.float32), "b2")]
    nodes = [helper.make_node("Cast", ["w16"], ["w1"], to=TensorProto.FLOAT), helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Transpose", ["w2t"], ["w2"], perm=[1, 0]),
             helper.make_node("Gemm", ["h", "w2", "b2"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "m.onnx")
    info = inspect_onnx(tmp_path / "m.onnx")
    assert (info["params"], info["macs"]) == (4 * 6 + 6 * 3 + 3, 4 * 6 + 6 * 3)


def test_data_from_a_recipe_a_folder_and_a_bin(bundles, tmp_path) -> None:
    """The same model calibrated from a recipe's dataset (models/image-digits.toml: train split calibrates, test
    split tests, with its labels and frontend), then from a folder of .npy files and a raw float32 .bin."""
    from toolkit.importer import ImportConfig, import_model
    from toolkit.paths import repo_dir

    model = bundles["dir"] / "cnn8.onnx"
    b = import_model(model, tmp_path / "r", ImportConfig(calib=str(repo_dir("models") / "image-digits.toml"),
                                                          calib_n=100, formats=("onnx", "tflite")))
    man, fid = _load(b)
    assert man["data"]["calib"]["source"] == man["data"]["test"]["source"] == "recipe"
    assert (man["data"]["calib"]["split"], man["data"]["test"]["split"]) == ("train", "test")
    assert man["labels"] == [str(i) for i in range(10)] and man["frontend"] and fid["n_test"] == 360
    assert fid["metric"] == "test_top1" and fid["float_vs_int8_tflite"]["n"] == 360
    _, _, xte, _ = _digits()
    (tmp_path / "npys").mkdir()
    for i in range(3):
        np.save(tmp_path / "npys" / f"{i}.npy", xte[i * 20:(i + 1) * 20])
    xte[:10].tofile(tmp_path / "x.bin")
    b = import_model(model, tmp_path / "f", ImportConfig(calib=str(tmp_path / "npys"), test=str(tmp_path / "x.bin"),
                                                          formats=("onnx", "tflite")))
    man, fid = _load(b)
    assert man["data"]["calib"]["source"] == "folder" and man["data"]["calib"]["n"] == 60
    assert man["data"]["test"]["source"] == "bin" and fid["n_test"] == 10 and man["test_set"]["y"] is None
    assert fid["metric"] is None and fid["int8_onnx_vs_tflite"]["identical"]
