"""Acceptance of `export` on the real test splits of all four tasks (bundles from exported_bundle)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from toolkit.fsio import sha256_file

TASKS = ["imu-motions", "kws-digits", "ecg-anomaly", "image-digits"]
N_TEST = {"imu-motions": 40, "kws-digits": 300, "ecg-anomaly": 343, "image-digits": 360}  # whole test splits


def _load(bundle: Path) -> tuple[dict, dict]:
    return (json.loads((bundle / "manifest.json").read_text()), json.loads((bundle / "fidelity.json").read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_int8_metric_drop_within_1_5_points(exported_bundle, task: str) -> None:
    _, fid = _load(exported_bundle(task))
    m = fid["metrics"]
    assert fid["n_test"] == N_TEST[task]  # the metrics are over the whole test split
    assert 100 * (m["onnx_fp32"] - m["onnx_int8"]) <= 1.5, m
    assert 100 * (m["onnx_fp32"] - m["tflite_int8"]) <= 1.5, m
    assert fid["torch_vs_onnx_fp32"]["max_abs_diff"] < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_litert_reference_and_tflm_bit_identical(exported_bundle, task: str) -> None:
    from toolkit.runtimes import run_litert, run_tflm

    b = exported_bundle(task)
    x = np.load(b / "test_x_int8.npy")
    lite = run_litert(b / "model_int8.tflite", x, reference=True)
    np.testing.assert_array_equal(lite, run_tflm(b / "model_int8.tflite", x))
    np.testing.assert_array_equal(lite, np.load(b / "test_out_int8.npy"))
    assert _load(b)[1]["litert_ref_vs_tflm"]["identical"]


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_int8_onnx_vs_tflite_every_op_within_1_lsb(exported_bundle, task: str) -> None:
    _, fid = _load(exported_bundle(task))
    per_op = fid["int8_onnx_vs_tflite_per_op"]
    assert per_op["ops_compared"] >= 2
    assert per_op["max_lsb_diff"] <= 1, per_op


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_int8_onnx_vs_tflite_model_output(exported_bundle, task: str) -> None:
    """ONNX int8 vs TFLite at the model output: the same decisions, a few LSB apart on a few outputs.

    Issue 3 asks for ≤ 1 LSB on every output; that holds per op, not end to end, and cannot, because the
    two runtimes round the same integer model differently. Both files hold the same int8 weights, int32
    biases, scales and zero points (test_ecg_onnx_and_tflite_are_one_integer_model). ONNX Runtime (default
    graph optimizations; ORT_DISABLE_ALL gives the same integers) executes the QDQ semantics: accumulator ×
    scale rounded once, half to even. TFLite's reference kernels and TFLite-Micro (whose outputs are the
    golden answers) round twice: a 31-bit fixed-point multiply, then a rounding right shift with ties away
    from zero; with right shifts of 6-10 bits that moves 0.03-0.34 % of an op's outputs by 1 LSB (op by
    op on TFLite's own inputs in ecg and kws; single rounding of the same accumulators reproduces ONNX
    Runtime). Each of those 1-LSB differences is an input of the next layer, where one input LSB moves an
    output by up to |weight| × input·weight/output scale (up to 1.1 in ecg, 1.5 in kws), so they compound.
    Measured end to end with this suite's training schedules (counts of 1 / 2 / ≥3 LSB differences, max):
    ecg-anomaly  layer 1: 9/0/0 of 21,952; layer 4: 172/2/0; layer 5: 318/16/1; output: 5,542/186/14 of
                 87,808, max 4;
    kws-digits   conv 1: 7,893/0/0 of 2.4 M; conv 2: 14,032/356/0; conv 6: 207,875/11,773/358;
                 conv 9: 405,061/95,570/14,402 (max 6; 7 after conv 8); mean 5,553/132/3 of 19,200;
                 logits 800/7/0 of 3,000, max 2;
    image-digits conv 1: 1,239/0/0; after the first residual ADD 4,740/5,178/10; mean 7,901/1,501/237
                 (max 5); logits 1,429/47/0 of 3,600, max 2;
    imu-motions  conv 1: 152/0/0; conv 3: 1,825/20/0 (max 2); logits 24/0/0 of 160, max 1.
    fidelity.json (int8_onnx_vs_tflite_per_op.end_to_end) and fidelity.md record this growth per bundle.
    """
    from toolkit.export.fidelity import QParams, to_nhwc
    from toolkit.runtimes import run_onnx

    b = exported_bundle(task)
    man, fid = _load(b)
    x = np.load(b / "test_x_int8.npy")
    inq, outq = (QParams(man[k]["scale"], man[k]["zero_point"]) for k in ("input", "output"))
    xf = inq.dequantize(x)
    onnx_q = outq.quantize(to_nhwc(run_onnx(b / "model_int8.onnx", xf.transpose(0, 3, 1, 2) if xf.ndim == 4 else xf)))
    d = np.abs(onnx_q.astype(int) - np.load(b / "test_out_int8.npy").astype(int))
    assert d.max() == fid["int8_onnx_vs_tflite"]["max_lsb_diff"]
    if man["kind"] == "classification":
        assert fid["int8_onnx_vs_tflite"]["agreement"] >= 0.99  # same top-1 class
    assert abs(fid["metrics"]["onnx_int8"] - fid["metrics"]["tflite_int8"]) <= 0.005
    assert fid["int8_onnx_vs_tflite"]["cosine"] > 0.999 and fid["int8_onnx_vs_tflite"]["rmse_lsb"] < 0.75
    per_op = fid["int8_onnx_vs_tflite_per_op"]
    layers = per_op["end_to_end"]
    assert len(layers) == per_op["ops_compared"] and per_op["n"] == len(x)
    assert layers[0]["max_lsb_diff"] <= 1  # the first op sees the same int8 input in both runtimes
    assert layers[-1]["max_lsb_diff"] == d.max()  # the growth table ends at the model output
    assert "where the output differences come from" in (b / "fidelity.md").read_text()
    assert d.max() <= 4  # measured bound (see above); ≤ 1 LSB holds per op (the per-op test)


def _litert_tensors(path: Path, x: np.ndarray, tensors: dict, names: list[str]) -> dict[str, np.ndarray]:
    """Every named ONNX tensor as LiteRT (reference kernels) computed it, [N, features], int64."""
    from toolkit.runtimes import _litert_interpreter_cls

    tfl = _litert_interpreter_cls()
    it = tfl.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=tfl.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for xi in x:
        it.set_tensor(it.get_input_details()[0]["index"], xi[None])
        it.invoke()
        for n in names:
            out[n].append(it.get_tensor(tensors[n].index).reshape(-1).astype(np.int64))
    return {n: np.stack(v) for n, v in out.items()}


def _tflite_requantize(acc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (reference kernels, TFLite-Micro), per channel: a 31-bit
    multiplier, SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT (ties away from zero)."""
    frac, shift = np.frexp(m)
    qm = np.round(frac * 2.0 ** 31).astype(np.int64)
    shift = np.where(qm == 2 ** 31, shift + 1, shift).astype(np.int64)
    qm = np.where(qm == 2 ** 31, 2 ** 30, qm)
    ab = (acc << np.maximum(shift, 0)) * qm
    r = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(r >= 0, r >> 31, -((-r) >> 31))  # C++ division truncates toward zero
    right = np.maximum(-shift, 0)
    mask = (np.int64(1) << right) - 1
    return (high >> right) + ((high & mask) > (mask >> 1) + (high < 0))


def _onnx_per_op(proto, lowered, x: np.ndarray, lite: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each quantized ONNX op run in ONNX Runtime on TFLite's int8 inputs, [N, features], int64."""
    from toolkit.export.fidelity import QParams
    from toolkit.export.per_op import _cut_model, _session

    cut, qs = _cut_model(proto, lowered.tensors)
    sess = _session(cut)
    xf = QParams(lowered.input.scale, lowered.input.zero_point).dequantize(x)
    out: dict[str, list[np.ndarray]] = {q.input[0]: [] for q in qs}
    for i in range(len(x)):
        feeds = {cut.graph.input[0].name: xf[i:i + 1]}
        feeds |= {f"{q.output[0]}__tflite": lite[q.input[0]][i].astype(np.int8).reshape(act.onnx_shape)
                  for q in qs for act in [lowered.tensors[q.input[0]]]}
        for q, v in zip(qs, sess.run([q.output[0] for q in qs], feeds)):
            out[q.input[0]].append(v.reshape(-1).astype(np.int64))
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.slow
def test_ecg_onnx_and_tflite_are_one_integer_model(exported_bundle) -> None:
    """The Linear layers of ecg-anomaly (CONV_2D 1×1 in TFLite), on TFLite's own int8 inputs: the int32
    accumulators from the ONNX file's int8 weights and int32 biases, requantized with the ONNX scales,
    give LiteRT's outputs bit for bit with TFLite's two roundings and ONNX Runtime's bit for bit with one
    (exact product, half to even). So the two files describe one integer model; only the rounding of each
    requantization differs (the model-output test explains how that compounds)."""
    import onnx

    from toolkit.export.lower import lower_qdq
    from toolkit.quant.graph import OnnxGraph, qparams

    b = exported_bundle("ecg-anomaly")
    proto = onnx.load(str(b / "model_int8.onnx"))
    lowered = lower_qdq(proto)
    assert lowered.tflite == (b / "model_int8.tflite").read_bytes()
    g = OnnxGraph(proto)
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm"]
    outs = [(g.consumers[n.output[0]][0].output[0] if g.consumers[n.output[0]][0].op_type == "Relu" else n.output[0])
            for n in gemms]
    x = np.load(b / "test_x_int8.npy")
    lite = _litert_tensors(b / "model_int8.tflite", x, lowered.tensors, [n.input[0] for n in gemms] + outs)
    ort = _onnx_per_op(proto, lowered, x, lite)
    rounded_apart = 0
    for n, y in zip(gemms, outs):
        (sx, zx), (sw, _) = qparams(g, g.producer[n.input[0]]), qparams(g, g.producer[n.input[1]])
        w, bias = g.const(g.producer[n.input[1]].input[0]), g.const(g.producer[n.input[2]].input[0])
        q = next(c for c in g.consumers[y] if c.op_type == "QuantizeLinear")
        sy, zy = (float(v) for v in qparams(g, q))
        acc = (lite[n.input[0]] - int(zx)) @ w.astype(np.int64).T + bias.astype(np.int64)
        m = float(sx) * sw.astype(np.float64).reshape(-1) / sy
        lo = int(zy) if y != n.output[0] else -128
        twice = np.clip(_tflite_requantize(acc, m) + int(zy), lo, 127)
        once = np.clip(np.rint(acc * m) + int(zy), lo, 127).astype(np.int64)
        np.testing.assert_array_equal(twice, lite[y], err_msg=f"{n.name}: TFLite rounding of the ONNX accumulators")
        np.testing.assert_array_equal(once, ort[y], err_msg=f"{n.name}: QDQ rounding of the same accumulators")
        rounded_apart += int(np.sum(once != twice))
    total = sum(lite[y].size for y in outs)
    assert 0 < rounded_apart < 0.01 * total, (rounded_apart, total)  # measured: 386 of 178,360


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_tflite_full_int8_nhwc_without_transpose(exported_bundle, task: str) -> None:
    from toolkit.export.tflite_writer import schema

    b = exported_bundle(task)
    s = schema()
    m = s.ModelT.InitFromObj(s.Model.GetRootAs((b / "model_int8.tflite").read_bytes(), 0))
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    ops = [names[m.operatorCodes[o.opcodeIndex].builtinCode] for o in m.subgraphs[0].operators]
    assert "TRANSPOSE" not in ops and "QUANTIZE" not in ops and "DEQUANTIZE" not in ops
    sg = m.subgraphs[0]
    for t in (sg.tensors[sg.inputs[0]], sg.tensors[sg.outputs[0]]):
        assert t.type == s.TensorType.INT8
    man, _ = _load(b)
    assert man["input"]["shape"] == list(sg.tensors[sg.inputs[0]].shape)
    assert np.load(b / "test_x_int8.npy").shape[1:] == tuple(man["input"]["shape"][1:])


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_manifest_hashes_and_facts(exported_bundle, trained_run, task: str) -> None:
    from toolkit.runtimes import tflm_arena_bytes
    from toolkit.tflite import read_model
    from toolkit.tflite.stats import summary

    b = exported_bundle(task)
    man, _ = _load(b)
    tfl = summary(read_model(b / "model_int8.tflite"))  # the reader, independent of the lowering's own counts
    assert (man["params"], man["macs"], man["ops"]) == (tfl["params"], tfl["macs"], tfl["ops"])
    assert man["macs"] == json.loads((trained_run(task) / "metrics.json").read_text())["macs"]  # torch profile
    assert man["tflm_arena_bytes"] == tflm_arena_bytes(b / "model_int8.tflite")
    for name in ("model_fp32.onnx", "model_int8.onnx", "model_int8.tflite", "fidelity.json", "test_x_int8.npy"):
        assert man["files"][name]["sha256"] == sha256_file(b / name)
        assert man["files"][name]["bytes"] == (b / name).stat().st_size
    assert man["task"] == task and man["kind"] in ("classification", "anomaly")
    assert man["tflm_arena_bytes"] > 512 and man["params"] > 1000 and man["macs"] > man["params"] // 2
    assert man["input"]["dtype"] == man["output"]["dtype"] == "int8"
    assert sum(man["ops"].values()) >= 3 and man["frontend"]
    assert len(np.load(b / "test_y.npy")) == man["test_set"]["n"]
    assert not list(b.parent.glob(".bundle.*")), "temporary folders left behind"
