"""`edgetk import` on the three MLPerf Tiny float models × both quantizers: agreement of the int8 bundle with the
float model, beside MLPerf's own int8 model on the same inputs (the baseline, measured in the same run).

Inputs: KWS, the reference input kws_input.npy (int8, dequantized with the int8 model's input parameters), real
speech (FSDD clips through toolkit.importer.mlperf's MLPerf-style MFCC) and RANDOM inputs on the int8 input grid; the speech calibrates; IC, RANDOM images (there are no
CIFAR images here) and natural images (crops of scikit-learn's sample photos, toolkit.importer.mlperf), which
calibrate; AD, the 40 reference windows (they calibrate and test). Each model is imported with dyadic
(integer-exact, the default) and free (--free-scales) requantization. Figures: top-1 agreement and output SQNR (KWS, IC); AD: decisions
"error > mean + 3 std of the float errors on the calibration windows", Spearman rank correlation of the errors,
mean relative error. Usage: .venv/bin/python bench/import_mlperf.py [--n 200] [--quantizers nncf,ort]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.export.fidelity import QParams, anomaly_scores
from toolkit.importer import ImportConfig, import_model
from toolkit.importer.mlperf import fsdd_speech, natural_images
from toolkit.paths import external_model
from toolkit.runtimes import run_litert, run_tflm
from toolkit.tflite import read_model

T = "mlperf_tiny/benchmark/training"
R = "mlperf_tiny/benchmark/reference_submissions"
MODELS = {
    "kws": (f"{T}/keyword_spotting/trained_models/kws_ref_model_float32.tflite",
            f"{T}/keyword_spotting/trained_models/kws_ref_model.tflite", f"{R}/keyword_spotting/kws_input.npy"),
    "ic": (f"{T}/image_classification/trained_models/pretrainedResnet.tflite",
           f"{T}/image_classification/trained_models/pretrainedResnet_quant.tflite", None),
    "ad": (f"{T}/anomaly_detection/trained_models/ad01_fp32.tflite",
           f"{T}/anomaly_detection/trained_models/ad01_int8.tflite",
           f"{R}/anomaly_detection/datasets/dcase01/normal_id_01_00000000_hist_librosa.bin"),
}


FSDD_CALIB = 200  # speech clips (KWS) / photos (IC) that calibrate; the next --n test


def _qparams(tflite: Path, which: str) -> QParams:
    g = read_model(tflite)
    t = g.tensor(g.inputs[0] if which == "input" else g.outputs[0])
    return QParams(t.quant.scale[0], t.quant.zero_point[0])


def int8_outputs(tflite: Path, x: np.ndarray) -> np.ndarray:
    """Float outputs of an int8 model (TFLite-Micro) for float inputs x."""
    return _qparams(tflite, "output").dequantize(run_tflm(tflite, _qparams(tflite, "input").quantize(x)))


def sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB."""
    return float(10 * np.log10((ref ** 2).mean() / max(((ref - got) ** 2).mean(), 1e-30)))


def classify(name: str, f: np.ndarray, ours: np.ndarray, theirs: np.ndarray) -> dict:
    top = f.argmax(1)
    return {"set": name, "n": len(f), "ours_top1_agree": float((ours.argmax(1) == top).mean()),
            "mlperf_int8_top1_agree": float((theirs.argmax(1) == top).mean()),
            "ours_sqnr_db": sqnr(f, ours), "mlperf_int8_sqnr_db": sqnr(f, theirs)}


def anomaly(x: np.ndarray, f: np.ndarray, ours: np.ndarray, theirs: np.ndarray) -> dict:
    from scipy.stats import spearmanr

    sf = anomaly_scores(f, x)
    thr = sf.mean() + 3 * sf.std()
    row = {"set": "AD windows", "n": len(x), "threshold": float(thr)}
    for who, out in (("ours", ours), ("mlperf_int8", theirs)):
        s = anomaly_scores(out, x)
        row |= {f"{who}_decisions_agree": float(((sf > thr) == (s > thr)).mean()),
                f"{who}_spearman": float(spearmanr(sf, s).statistic),
                f"{who}_rel_err_mean": float((np.abs(s - sf) / sf).mean())}
    return row


def run_one(model: str, quantizer: str, n: int, work: Path, dyadic: bool = True) -> list[dict]:
    """Import one model with one quantizer and measure it beside MLPerf's int8 model on the same inputs."""
    fp32, int8, ref = (external_model(p) if p else None for p in MODELS[model])
    q_in = _qparams(int8, "input")
    rng = np.random.default_rng(7)
    shape = read_model(fp32).tensor(read_model(fp32).inputs[0]).shape[1:]
    random_x = q_in.dequantize(rng.integers(-128, 128, size=(n, *shape)).astype(np.int8))
    if model == "kws":
        speech = fsdd_speech(FSDD_CALIB + n)
        np.savez(work / "kws-speech-calib.npz", x=speech[:FSDD_CALIB])
        cfg = ImportConfig(calib=str(work / "kws-speech-calib.npz"), test=str(ref),
                           input_quant=(q_in.scale, q_in.zero_point), quantizer=quantizer, formats=("onnx", "tflite"))
        sets = {"reference input": q_in.dequantize(np.load(ref)), "FSDD speech (MFCC)": speech[FSDD_CALIB:],
                "RANDOM (int8 grid)": random_x}
    elif model == "ic":
        photos = natural_images(FSDD_CALIB + n)
        np.savez(work / "ic-photos-calib.npz", x=photos[:FSDD_CALIB])
        cfg = ImportConfig(calib=str(work / "ic-photos-calib.npz"), test_n=32, quantizer=quantizer,
                           formats=("onnx", "tflite"))
        sets = {"natural images": photos[FSDD_CALIB:], "RANDOM images": random_x}
    else:
        cfg = ImportConfig(calib=str(ref), quantizer=quantizer, formats=("onnx", "tflite"))
        sets = {"AD windows": np.fromfile(ref, dtype="<f4").reshape(-1, 640)}
    cfg = replace(cfg, dyadic=dyadic)
    t0 = time.monotonic()
    b = import_model(fp32, work / f"{model}-{quantizer}-{dyadic}", cfg)
    took = time.monotonic() - t0
    fid = json.loads((b / "fidelity.json").read_text())
    rows = []
    for name, x in sets.items():
        f = run_litert(fp32, x)
        ours, theirs = int8_outputs(b / "model_int8.tflite", x), int8_outputs(int8, x)
        row = anomaly(x, f, ours, theirs) if model == "ad" else classify(name, f, ours, theirs)
        rows.append({"model": model, "quantizer": quantizer + ("" if dyadic else "/free"), "import_s": round(took, 1),
                     "onnx_int8_eq_tflite": fid["int8_onnx_vs_tflite"]["identical"], **row})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="random inputs per model (default 200)")
    ap.add_argument("--quantizers", default="nncf,ort")
    ap.add_argument("--models", default="kws,ic,ad")
    args = ap.parse_args(argv)
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as d:
        for model in args.models.split(","):
            for q in args.quantizers.split(","):
                for dyadic in (True, False):
                    try:
                        rows += run_one(model, q, args.n, Path(d), dyadic)
                    except EdgetkError as e:
                        failed.append((model, q + ("" if dyadic else "/free"), str(e).splitlines()[0]))
    for r in rows:
        if r["model"] == "ad":
            print(f"{r['model']:3s} {r['quantizer']:9s} {r['set']:20s} n={r['n']:3d}  decisions agree ours "
                  f"{100 * r['ours_decisions_agree']:5.1f} % / MLPerf int8 {100 * r['mlperf_int8_decisions_agree']:5.1f} %"
                  f"  Spearman {r['ours_spearman']:.4f} / {r['mlperf_int8_spearman']:.4f}  rel err "
                  f"{100 * r['ours_rel_err_mean']:.2f} % / {100 * r['mlperf_int8_rel_err_mean']:.2f} %"
                  f"  ONNX int8 = TFLite {r['onnx_int8_eq_tflite']}  import {r['import_s']} s")
        else:
            print(f"{r['model']:3s} {r['quantizer']:9s} {r['set']:20s} n={r['n']:3d}  top-1 agree ours "
                  f"{100 * r['ours_top1_agree']:5.1f} % / MLPerf int8 {100 * r['mlperf_int8_top1_agree']:5.1f} %  SQNR "
                  f"{r['ours_sqnr_db']:5.1f} / {r['mlperf_int8_sqnr_db']:5.1f} dB  ONNX int8 = TFLite "
                  f"{r['onnx_int8_eq_tflite']}  import {r['import_s']} s")
    for model, q, msg in failed:
        print(f"{model:3s} {q:9s} FAILED: {msg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
