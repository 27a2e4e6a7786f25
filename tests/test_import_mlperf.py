"""`edgetk import` on the MLPerf Tiny models in shared/external (models nobody here wrote).

Float KWS / IC / AD .tflite → float ONNX → NNCF → the same bundle as `edgetk export`; the int8 KWS .tflite is
wrapped as is. Real inputs available: the KWS reference input (kws_input.npy, int8, dequantized with the int8
model's input parameters), the AD reference windows (40 × 640 float32). IC has none: its calibration and test
inputs are seeded random images (labelled RANDOM in the manifest and fidelity.md). Agreement with the float
model: top-1 (KWS, IC); AD: decisions "reconstruction error > mean + 3 std of the float model's errors on the
calibration windows" and the rank correlation of the errors, with MLPerf's own int8 model as the baseline.
Longer runs (both quantizers, more inputs): bench/import_mlperf.py.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from toolkit.cli import main

_T = "mlperf_tiny/benchmark/training"
KWS_FLOAT = f"{_T}/keyword_spotting/trained_models/kws_ref_model_float32.tflite"
KWS_INT8 = f"{_T}/keyword_spotting/trained_models/kws_ref_model.tflite"
IC_FLOAT = f"{_T}/image_classification/trained_models/pretrainedResnet.tflite"
IC_INT8 = f"{_T}/image_classification/trained_models/pretrainedResnet_quant.tflite"
AD_FLOAT = f"{_T}/anomaly_detection/trained_models/ad01_fp32.tflite"
AD_INT8 = f"{_T}/anomaly_detection/trained_models/ad01_int8.tflite"
KWS_INPUT = "mlperf_tiny/benchmark/reference_submissions/keyword_spotting/kws_input.npy"
AD_INPUT = "mlperf_tiny/benchmark/reference_submissions/anomaly_detection/datasets/dcase01/" \
           "normal_id_01_00000000_hist_librosa.bin"


def _load(b: Path) -> tuple[dict, dict]:
    return json.loads((b / "manifest.json").read_text()), json.loads((b / "fidelity.json").read_text())


@pytest.fixture(scope="module")
def kws(external, tmp_path_factory) -> Path:
    """KWS float: RANDOM calibration in the int8 model's input range, tested on the real reference input."""
    out = tmp_path_factory.mktemp("kws") / "bundle"
    assert main(["import", str(external / KWS_FLOAT), "-o", str(out), "--calib", "random", "--calib-n", "100",
                 "--test", str(external / KWS_INPUT), "--input-quant", str(external / KWS_INT8)]) == 0
    return out


@pytest.fixture(scope="module")
def ad(external, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ad") / "bundle"
    assert main(["import", str(external / AD_FLOAT), "-o", str(out), "--calib", str(external / AD_INPUT)]) == 0
    return out


def test_kws_float_agrees_on_the_reference_input(kws, external) -> None:
    man, fid = _load(kws)
    assert fid["float_vs_int8_tflite"] == {"top1_agreement": 1.0, "n": 1}
    assert fid["int8_onnx_vs_tflite"]["identical"] and fid["litert_ref_vs_tflm"]["identical"]
    assert fid["source_vs_onnx_fp32"]["max_abs_diff"] < 1e-3  # int8-stored weights dequantized exactly
    assert man["data"]["calib"]["source"] == "random" and man["data"]["random"]
    assert man["data"]["test"]["source"] == "npy" and man["data"]["test"]["dequantized_with"][1] == 83
    md = (kws / "fidelity.md").read_text()
    assert "Calibration inputs: **RANDOM inputs**" in md and "Test inputs: npy file" in md
    assert man["source"]["format"] == "tflite-float" and man["source"]["input_layout"] == "NHWC"
    assert man["input"]["shape"] == [1, 49, 10, 1] and man["kind"] == "classification"
    assert (man["input"]["scale"], man["input"]["zero_point"]) == (np.float32(0.5847029089927673), 83)  # pinned
    np.testing.assert_array_equal(np.load(kws / "test_x_int8.npy"), np.load(external / KWS_INPUT))  # same int8 input
    assert man["macs"] == 2_656_768  # the MLPerf figure (conv, depthwise, FC), counted by the lowering


def test_ad_float_decisions_and_ranking(ad, external) -> None:
    """AD: 40 real windows of one normal clip calibrate and test. Decisions at mean + 3 std of the float errors
    agree on every window; the ranking of the errors (Spearman) beats MLPerf's own int8 model on the same windows."""
    from scipy.stats import spearmanr

    from toolkit.export.fidelity import QParams, anomaly_scores
    from toolkit.runtimes import run_litert, run_tflm
    from toolkit.tflite import read_model

    man, fid = _load(ad)
    a = fid["float_vs_int8_tflite"]
    x = np.fromfile(external / AD_INPUT, dtype="<f4").reshape(-1, 640)
    g = read_model(external / AD_INT8)
    qi, qo = g.tensor(g.inputs[0]).quant, g.tensor(g.outputs[0]).quant
    theirs = QParams(qo.scale[0], qo.zero_point[0]).dequantize(
        run_tflm(external / AD_INT8, QParams(qi.scale[0], qi.zero_point[0]).quantize(x)))
    sf = anomaly_scores(run_litert(external / AD_FLOAT, x), x)
    rho_theirs = float(spearmanr(sf, anomaly_scores(theirs, x)).statistic)
    print(f"AD: decisions agree {100 * a['decision_agreement']:.1f} % of {a['n']} windows; Spearman ours "
          f"{a['score_spearman']:.4f} vs MLPerf int8 {rho_theirs:.4f}; relative error mean "
          f"{100 * a['score_rel_err_mean']:.2f} %")
    assert man["kind"] == "anomaly" and "inferred" in man["source"]["kind_from"] and a["n"] == 40
    assert a["decision_agreement"] == 1.0 and a["score_spearman"] > rho_theirs and a["score_rel_err_mean"] < 0.03
    assert fid["int8_onnx_vs_tflite"]["identical"] and not man["data"]["random"]


def test_ic_float_within_a_minute(external, tmp_path, capsys) -> None:
    """IC ResNet-8 (12.5 M MACs): import + fidelity on seeded random images (no real CIFAR inputs here), against
    MLPerf's own int8 model on the same images as the baseline."""
    from toolkit.runtimes import run_litert, run_tflm

    t0 = time.monotonic()
    out = tmp_path / "ic"
    assert main(["import", str(external / IC_FLOAT), "-o", str(out), "--calib-n", "200", "--test-n", "32",
                 "--input-quant", str(external / IC_INT8), "--formats", "onnx,tflite"]) == 0
    took = time.monotonic() - t0
    printed = capsys.readouterr().out
    assert "**RANDOM inputs**" in printed and "NOTE: RANDOM inputs were used" in printed
    man, fid = _load(out)
    ours = fid["float_vs_int8_tflite"]["top1_agreement"]
    xq = np.load(out / "test_x_int8.npy")
    prob = run_litert(external / IC_FLOAT, xq.astype(np.float32) + 128)  # input scale 1, zero point -128
    their_q = run_tflm(external / IC_INT8, xq)
    theirs = float((their_q.argmax(1) == prob.argmax(1)).mean())

    def sqnr(q: np.ndarray) -> float:  # softmax outputs: scale 1/256, zero point -128 in both models
        return float(10 * np.log10((prob ** 2).mean() / ((prob - (q.astype(np.float32) + 128) / 256) ** 2).mean()))

    ours_db, theirs_db = sqnr(np.load(out / "test_out_int8.npy")), sqnr(their_q)
    print(f"IC: {took:.1f} s; on 32 RANDOM images, top-1 agreement with the float model: ours {100 * ours:.1f} %, "
          f"MLPerf's int8 model {100 * theirs:.1f} %; output SQNR ours {ours_db:.1f} dB, theirs {theirs_db:.1f} dB")
    # The dyadic scales (ONNX int8 == TFLite by construction) cost IC a few dB beside MLPerf's free-scale model
    # calibrated on CIFAR-10: measured 15.2 vs 19.6 dB here (on 32 natural-image crops 11.4 vs 14.9 dB, with the Add
    # pass before the mean pass; 10.9 dB before it); free scales reach 19.0 dB (bench/import_mlperf.py).
    assert took < 60 and ours_db >= theirs_db - 5 and ours_db >= 12
    assert man["data"]["random"] and man["data"]["calib"]["source"] == "random" and "RANDOM" in (out / "fidelity.md").read_text()
    assert ours >= 0.85  # random images: a few have thin margins (bench/import_mlperf.py: more images, both quantizers)
    assert fid["litert_ref_vs_tflm"]["identical"] and fid["int8_onnx_vs_tflite"]["agreement"] == 1.0
    assert man["ops"]["ADD"] == 3 and "TRANSPOSE" not in man["ops"] and man["macs"] >= 12_501_632


def test_kws_int8_wrapped_as_is(external, tmp_path) -> None:
    from toolkit.hil.bundle import load_bundle

    out = tmp_path / "kws8"
    assert main(["import", str(external / KWS_INT8), "-o", str(out), "--test", str(external / KWS_INPUT)]) == 0
    man, fid = _load(out)
    assert (out / "model_int8.tflite").read_bytes() == (external / KWS_INT8).read_bytes()
    assert man["int8_onnx"] is None and "quantized" in man["no_int8_onnx"] and not (out / "model_int8.onnx").exists()
    assert fid["litert_ref_vs_tflm"]["identical"] and man["macs"] == 2_656_768 and man["tflm_arena_bytes"] > 0
    np.testing.assert_array_equal(np.load(out / "test_x_int8.npy"), np.load(external / KWS_INPUT))
    b = load_bundle(out)
    assert b.c_dir is not None and b.io("input")["zero_point"] == 83


@pytest.mark.parametrize("which", ["kws", "ad"])
def test_generated_c_equals_tflite_micro(which, kws, ad, tmp_path) -> None:
    require_tool("gcc")
    from toolkit.codegen.parity import check

    b = {"kws": kws, "ad": ad}[which]
    x = np.load(b / "test_x_int8.npy")
    rand = np.random.default_rng(0).integers(-128, 128, size=(8, *x.shape[1:]), dtype=np.int8)
    p = check(b / "model_int8.tflite", np.concatenate([x, rand]), tmp_path)
    assert p.identical == len(x) + 8 and p.max_diff == 0


def test_imported_kws_validates_on_qemu(kws, tmp_path, capsys) -> None:
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    rc = main(["validate", str(kws), "--target", "qemu-m4", "-o", str(tmp_path / "v"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["verdict"] == "pass" and doc["ran_on"] == "qemu-m4", doc


def test_float_tflite_converter_keeps_nhwc_semantics(tmp_path) -> None:
    """A float .tflite that flattens a 4×4×3 NHWC map before a dense layer (SAME conv with stride 2, depthwise,
    RESHAPE, FULLY_CONNECTED, SOFTMAX): the NCHW ONNX graph computes LiteRT's outputs (weights permuted, no
    TRANSPOSE), and the bundle is built from it."""
    from toolkit.importer import ImportConfig, import_model
    from toolkit.tflite.build import OpSpec, TensorSpec, build_model

    rng = np.random.default_rng(0)
    f = dict(dtype="float32", scale=None)
    t = [TensorSpec((1, 8, 8, 2), **f),
         TensorSpec((3, 3, 3, 2), data=rng.normal(0, 0.5, (3, 3, 3, 2)).astype(np.float32), **f),
         TensorSpec((3,), data=rng.normal(0, 0.1, 3).astype(np.float32), **f), TensorSpec((1, 4, 4, 3), **f),
         TensorSpec((1, 3, 3, 3), data=rng.normal(0, 0.5, (1, 3, 3, 3)).astype(np.float32), **f),
         TensorSpec((3,), data=np.zeros(3, np.float32), **f), TensorSpec((1, 4, 4, 3), **f),
         TensorSpec((2,), dtype="int32", scale=None, data=np.array([1, 48], np.int32)), TensorSpec((1, 48), **f),
         TensorSpec((5, 48), data=rng.normal(0, 0.3, (5, 48)).astype(np.float32), **f),
         TensorSpec((5,), data=np.zeros(5, np.float32), **f), TensorSpec((1, 5), **f), TensorSpec((1, 5), **f)]
    ops = [OpSpec("CONV_2D", (0, 1, 2), (3,), {"padding": "SAME", "stride_h": 2, "stride_w": 2,
                                                "fused_activation_function": "RELU"}),
           OpSpec("DEPTHWISE_CONV_2D", (3, 4, 5), (6,), {"padding": "SAME", "stride_h": 1, "stride_w": 1,
                                                         "depth_multiplier": 1, "fused_activation_function": "RELU6"}),
           OpSpec("RESHAPE", (6, 7), (8,), {"new_shape": [1, 48]}),
           OpSpec("FULLY_CONNECTED", (8, 9, 10), (11,)), OpSpec("SOFTMAX", (11,), (12,), {"beta": 1.0})]
    p = tmp_path / "nhwc.tflite"
    p.write_bytes(build_model(t, ops, [0], [12]))
    b = import_model(p, tmp_path / "b", ImportConfig(input_range=(0.0, 1.0), calib_n=64, test_n=64,
                                                     formats=("onnx", "tflite")))
    man, fid = _load(b)
    assert fid["source_vs_onnx_fp32"]["max_abs_diff"] < 1e-5
    assert fid["int8_onnx_vs_tflite"]["identical"] and "TRANSPOSE" not in man["ops"]
    assert man["data"]["random"] and "uniform in [0, 1]" in man["data"]["test"]["description"]


def test_kws_float_with_the_onnxruntime_quantizer(external, tmp_path) -> None:
    """The dense layer after the global pool becomes a 1×1 Conv on import, so no quantized reshape sits between
    the exact mean and it (onnxruntime quantizes one): --quantizer ort lowers, ONNX int8 = TFLite."""
    from toolkit.importer import ImportConfig, import_model

    b = import_model(external / KWS_FLOAT, tmp_path / "b", ImportConfig(
        quantizer="ort", calib="random", calib_n=64, test=str(external / KWS_INPUT),
        input_quant=(0.5847029089927673, 83), formats=("onnx", "tflite")))
    man, fid = _load(b)
    assert any("after a global pool → 1×1 Conv" in s for s in man["source"]["steps"])
    assert fid["int8_onnx_vs_tflite"]["identical"] and fid["float_vs_int8_tflite"]["top1_agreement"] == 1.0
    assert man["macs"] == 2_656_768 and man["export"]["quantizer"] == "ort"


def test_kws_float_on_real_speech(external, shared, tmp_path) -> None:
    """KWS calibrated and tested on real speech (FSDD clips through toolkit.importer.mlperf's MLPerf-style MFCC)
    plus the reference input: int8 top-1 agrees with the float model on >= 99 %, as MLPerf's own int8 model does
    on the same inputs, and the output SQNR is within 1 dB of it."""
    from toolkit.export.fidelity import QParams
    from toolkit.importer import ImportConfig, import_model
    from toolkit.importer.mlperf import fsdd_speech
    from toolkit.pytest_plugin import skip_without_data
    from toolkit.runtimes import run_litert, run_tflm

    if not (shared / "data" / "fsdd" / "recordings").is_dir():
        skip_without_data(f"FSDD not found under {shared}; fix: set EDGETK_SHARED")
    q_in = QParams(0.5847029089927673, 83)
    speech = fsdd_speech(300)
    test_x = np.concatenate([q_in.dequantize(np.load(external / KWS_INPUT)), speech[200:]])
    np.savez(tmp_path / "calib.npz", x=speech[:200])
    np.savez(tmp_path / "test.npz", x=test_x)
    b = import_model(external / KWS_FLOAT, tmp_path / "b", ImportConfig(
        calib=str(tmp_path / "calib.npz"), test=str(tmp_path / "test.npz"), formats=("onnx", "tflite")))
    man, fid = _load(b)
    ours = fid["float_vs_int8_tflite"]["top1_agreement"]
    prob = run_litert(external / KWS_FLOAT, test_x)
    theirs_q = run_tflm(external / KWS_INT8, q_in.quantize(test_x))
    theirs = float((theirs_q.argmax(1) == prob.argmax(1)).mean())

    def sqnr(q: np.ndarray) -> float:
        return float(10 * np.log10((prob ** 2).mean() / ((prob - (q.astype(np.float32) + 128) / 256) ** 2).mean()))

    ours_db, theirs_db = sqnr(np.load(b / "test_out_int8.npy")), sqnr(theirs_q)
    print(f"KWS on {len(test_x)} real inputs (reference + FSDD speech): top-1 agreement ours {100 * ours:.1f} %, "
          f"MLPerf's int8 model {100 * theirs:.1f} %; output SQNR ours {ours_db:.1f} dB, theirs {theirs_db:.1f} dB")
    assert fid["float_vs_int8_tflite"]["n"] == 101 and ours >= 0.99 and ours_db >= theirs_db - 1
    assert not man["data"]["random"] and fid["int8_onnx_vs_tflite"]["identical"]
