"""Per-stage fidelity on the real test split: torch → ONNX fp32 → ONNX int8 → TFLite → TFLite-Micro."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QParams:
    """Scale and zero point of an int8 tensor."""

    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float → int8, round half to even, saturating (ONNX QuantizeLinear semantics)."""
        return np.clip(np.rint(x / np.float32(self.scale)) + self.zero_point, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """int8 → float32."""
        return ((q.astype(np.int32) - self.zero_point) * np.float32(self.scale)).astype(np.float32)


def to_nhwc(x: np.ndarray) -> np.ndarray:
    """A batch in ONNX layout (NCHW for 4-D) in TFLite layout (NHWC); other ranks unchanged."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def task_metric(kind: str, outputs: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy (classification) or ROC AUC of the reconstruction MSE (anomaly) as a fraction."""
    if kind == "anomaly":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y, anomaly_scores(outputs, x)))
    return float((outputs.reshape(len(y), -1).argmax(axis=1) == y).mean())


def agreement(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    """Top-1 agreement of two output batches (classification), else the fraction of equal-within-1-LSB rows."""
    a2, b2 = a.reshape(len(a), -1), b.reshape(len(b), -1)
    if kind == "anomaly":
        return float((np.abs(a2.astype(np.float64) - b2).max(axis=1) <= 1).mean())
    return float((a2.argmax(axis=1) == b2.argmax(axis=1)).mean())


def compare_int(kind: str, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Max LSB difference, agreement, RMSE (LSB) and cosine of two int8 output batches."""
    d = a.astype(np.float64) - b.astype(np.float64)
    fa, fb = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    cos = float(fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb) + 1e-12))
    return {"max_lsb_diff": int(np.abs(d).max()), "agreement": agreement(kind, a, b),
            "rmse_lsb": float(np.sqrt((d ** 2).mean())), "cosine": cos,
            "identical": bool(np.array_equal(a, b)), "n": int(len(a))}


def anomaly_scores(outputs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Reconstruction error per sample: the mean squared difference between output and input."""
    return ((outputs.reshape(len(x), -1) - x.reshape(len(x), -1)) ** 2).mean(axis=1)


def float_vs_int8(kind: str, x: np.ndarray, ref: np.ndarray, int8: np.ndarray,
                  threshold: float | None = None) -> dict[str, Any]:
    """How the int8 model (dequantized outputs) agrees with the float reference on the same inputs.

    Classification: top-1 agreement. Anomaly (autoencoders): the reconstruction errors (`anomaly_scores`) of
    both, their Spearman rank correlation, their relative difference, and the agreement of the decisions
    "score > threshold" with the threshold given (the bundle writer passes mean + 3 std of the float model's
    scores on the calibration inputs, normal data) or, without one, the same over these inputs.
    Regression: RMSE of the difference relative to the float outputs' RMS, and the max abs difference.
    """
    if kind == "regression":
        d = int8.astype(np.float64) - ref
        return {"rel_rmse": float(np.sqrt((d ** 2).mean() / max((ref.astype(np.float64) ** 2).mean(), 1e-30))),
                "max_abs_diff": float(np.abs(d).max()), "n": int(len(x))}
    if kind != "anomaly":
        return {"top1_agreement": agreement("classification", ref, int8), "n": int(len(x))}
    from scipy.stats import spearmanr

    sf, sq = anomaly_scores(ref, x).astype(np.float64), anomaly_scores(int8, x).astype(np.float64)
    thr = float(sf.mean() + 3 * sf.std()) if threshold is None else float(threshold)
    rho = float(spearmanr(sf, sq).statistic) if len(x) > 1 else 1.0
    rel = np.abs(sq - sf) / np.maximum(sf, 1e-12)
    return {"decision_agreement": float(((sf > thr) == (sq > thr)).mean()), "threshold": thr,
            "score_spearman": rho, "score_rel_err_mean": float(rel.mean()), "score_rel_err_max": float(rel.max()),
            "n": int(len(x))}


def measure(kind: str, x: np.ndarray, y: np.ndarray | None, outs: dict[str, np.ndarray], out_q: QParams, *,
            reference: str = "torch", threshold: float | None = None) -> dict[str, Any]:
    """The fidelity record from the outputs of every stage on the same test inputs.

    `outs` holds float outputs `reference` (the float model the bundle comes from: "torch" for a training run,
    "source" for an imported model), "onnx_fp32", "onnx_int8" (ONNX Runtime on integer kernels) and,
    optionally, "onnx_int8_ort_defaults" (ONNX Runtime's default options on this CPU), in ONNX layout, and
    int8 outputs "litert_ref", "tflm" (TFLite layout). Without labels (`y` None) there is no task metric:
    the agreement with the float reference (`float_vs_int8_tflite`) is the figure.
    """
    t, f, i = outs[reference], outs["onnx_fp32"], outs["onnx_int8"]
    i_q = out_q.quantize(to_nhwc(i))
    lite, tflm = outs["litert_ref"], outs["tflm"]
    lite_f = _back(out_q.dequantize(lite), i.shape)
    m: dict[str, float] = {}
    scored = y is not None and kind in ("classification", "anomaly")  # regression targets: no task metric here
    if scored:
        m = {k: task_metric(kind, v, x, y) for k, v in ((f"{reference}_fp32", t), ("onnx_fp32", f), ("onnx_int8", i))}
        m["tflite_int8"] = task_metric(kind, lite_f, x, y)
    return {
        "kind": kind, "n_test": int(len(x)), "reference": reference, "labelled": y is not None,
        "metric": ("test_auc" if kind == "anomaly" else "test_top1") if scored else None,
        "metrics": m,
        f"{reference}_vs_onnx_fp32": {"max_abs_diff": float(np.abs(t - f).max())},
        "fp32_vs_int8_onnx": {"metric_delta_points": 100.0 * (m["onnx_int8"] - m["onnx_fp32"]) if m else None,
                              "top1_agreement": agreement("classification", f, i) if kind == "classification" else None,
                              "max_abs_diff": float(np.abs(f - i).max())},
        "float_vs_int8_tflite": float_vs_int8(kind, x, t, lite_f, threshold),
        "int8_onnx_vs_tflite": compare_int(kind, i_q, lite),
        **({"int8_onnx_ort_defaults_vs_tflite": compare_int(kind, out_q.quantize(to_nhwc(outs["onnx_int8_ort_defaults"])), lite)}
           if "onnx_int8_ort_defaults" in outs else {}),
        "litert_ref_vs_tflm": compare_int(kind, lite, tflm),
    }


def _back(nhwc: np.ndarray, onnx_shape: tuple[int, ...]) -> np.ndarray:
    return nhwc.transpose(0, 3, 1, 2) if len(onnx_shape) == 4 else nhwc


def markdown(fid: dict[str, Any], title: str) -> str:
    """fidelity.md: where the inputs come from, then one table row per stage joint."""
    a, b, q = fid["int8_onnx_vs_tflite"], fid["litert_ref_vs_tflm"], fid["fp32_vs_int8_onnx"]
    ref = fid.get("reference", "torch")
    ref_name = fid.get("reference_name", f"{ref} fp32")
    agree = "n/a" if q["top1_agreement"] is None else f"{100 * q['top1_agreement']:.2f} %"
    delta = "" if q["metric_delta_points"] is None else f"metric delta {q['metric_delta_points']:+.2f} points, "
    rows = [
        f"# Fidelity: {title}",
        "",
        *data_lines(fid.get("data")),
        _metric_line(fid, ref_name),
        "",
        "| joint | figure |",
        "|---|---|",
        f"| {ref_name} ↔ ONNX fp32 | max abs diff {fid[f'{ref}_vs_onnx_fp32']['max_abs_diff']:.3g} |",
        f"| ONNX fp32 ↔ ONNX int8 | {delta}top-1 agreement {agree} |",
        *([f"| {ref_name} ↔ TFLite int8 | {_float_int8(fid['float_vs_int8_tflite'])} |"] if "float_vs_int8_tflite" in fid else []),
        f"| ONNX int8 (ONNX Runtime, integer kernels) ↔ TFLite (LiteRT ref) | {_int_cmp(a)} |",
        *_defaults_row(fid),
        *_per_op_row(fid),
        f"| LiteRT ref ↔ TFLite-Micro | {'bit-identical' if b['identical'] else 'DIFFERENT: max %d LSB' % b['max_lsb_diff']} |",
        "",
        *_rounding_section(fid),
    ]
    return "\n".join(rows)


def data_lines(data: dict[str, Any] | None) -> list[str]:
    """One line per data role (calibration, test) naming its source; random inputs are flagged loudly."""
    if not data:
        return []
    out = []
    for role, name in (("calib", "Calibration inputs"), ("test", "Test inputs")):
        d = data.get(role)
        if d:
            flag = "**RANDOM inputs** (no real data given): " if d.get("source") == "random" else ""
            out.append(f"{name}: {flag}{d.get('description', d.get('source'))} ({d.get('n', '?')} samples).")
    return out + [""] if out else []


def _metric_line(fid: dict[str, Any], ref_name: str) -> str:
    m = fid["metrics"]
    if fid.get("metric") is None:
        return (f"Test inputs: {fid['n_test']} samples without labels: no task metric; the figure is the agreement "
                f"of the int8 model with the float model ({ref_name}).")
    ref = fid.get("reference", "torch")
    return (f"Test split: {fid['n_test']} samples; metric {fid['metric']} "
            f"({ref_name} {100 * m[f'{ref}_fp32']:.2f}, ONNX fp32 {100 * m['onnx_fp32']:.2f}, "
            f"ONNX int8 {100 * m['onnx_int8']:.2f}, TFLite int8 {100 * m['tflite_int8']:.2f}).")


def _float_int8(c: dict[str, Any]) -> str:
    if "top1_agreement" in c:
        return f"top-1 agreement {100 * c['top1_agreement']:.2f} % ({c['n']} samples)"
    if "rel_rmse" in c:
        return f"relative RMSE {100 * c['rel_rmse']:.2f} %, max abs diff {c['max_abs_diff']:.4g} ({c['n']} samples)"
    return (f"anomaly decisions (score > {c['threshold']:.4g}) agree on {100 * c['decision_agreement']:.2f} % of "
            f"{c['n']} samples; score rank correlation (Spearman) {c['score_spearman']:.4f}; relative score error "
            f"mean {100 * c['score_rel_err_mean']:.2f} %, max {100 * c['score_rel_err_max']:.2f} %")


def _int_cmp(c: dict[str, Any]) -> str:
    if c["identical"]:
        return f"bit-identical on all {c['n']} test samples"
    return (f"max {c['max_lsb_diff']} LSB, agreement {100 * c['agreement']:.2f} %, RMSE {c['rmse_lsb']:.3f} LSB, "
            f"cosine {c['cosine']:.6f}")


def _defaults_row(fid: dict[str, Any]) -> list[str]:
    c = fid.get("int8_onnx_ort_defaults_vs_tflite")
    if not c:
        return []
    return [f"| ONNX int8 (ONNX Runtime defaults on this CPU) ↔ TFLite | {_int_cmp(c)} |"]


def _per_op_row(fid: dict[str, Any]) -> list[str]:
    p = fid.get("int8_onnx_vs_tflite_per_op")
    if not p:
        return []
    return [f"| ONNX int8 ↔ TFLite, op by op (same int8 inputs) | max {p['max_lsb_diff']} LSB over "
            f"{p['ops_compared']} ops, {p['n']} samples |"]


ROUNDING_NOTE = (
    "Every int8 op ends in a requantization: its int32 accumulator × input·weight/output scale, rounded. "
    "ONNX Runtime rounds that product once; TFLite's reference kernels and TFLite-Micro, whose outputs are "
    "the golden answers (test_out_int8.npy), round twice: a 31-bit fixed-point multiply, then a rounding "
    "right shift with ties away from zero. With arbitrary scales a value near a rounding boundary lands "
    "1 LSB apart (0.03-0.3 % of an op's outputs) and those differences compound over the layers. "
    "{how}"
)
DYADIC_NOTE = (
    "This bundle uses dyadic requantization (toolkit/quant/dyadic.py): per-channel weight scales are snapped "
    "so that every multiplier is a power of two 2^-k, spatial means are depthwise convolutions with the same "
    "property, the tensors an Add joins share one scale, and ties are pinned away from zero in both files: every "
    "requantization is then meant to be one exact shift in both runtimes. {measured} Per tensor, end to end on the "
    "same test samples ({ort}):"
)
MEASURED_SAME = ("Measured: they computed the same integers on all {tensors} compared tensors and the outputs of all "
                 "{n} test samples.")
MEASURED_DIFFERENT = ("Measured: they did not; {differing} of {tensors} compared tensors differ (up to {max} LSB) and "
                      "the outputs differ by up to {out_max} LSB on these {n} test samples.")
FREE_NOTE = (
    "This bundle keeps the quantizer's free scales (--free-scales), so the runtimes part ways as follows "
    "({ort}), per quantized tensor, end to end on the same test samples:"
)


def measured_agreement(fid: dict[str, Any]) -> dict[str, Any]:
    """How far ONNX int8 and TFLite agreed in this run: outputs on every test sample, and every tensor end to end
    (the only source of any "same integers" / "bit-identical" sentence)."""
    out = fid["int8_onnx_vs_tflite"]
    layers = (fid.get("int8_onnx_vs_tflite_per_op") or {}).get("end_to_end") or []
    differing = [r for r in layers if r["max_lsb_diff"]]
    return {"identical": bool(out["identical"]) and not differing, "n": int(out["n"]),
            "output_max_lsb_diff": int(out["max_lsb_diff"]),
            "max_lsb_diff": max([int(out["max_lsb_diff"])] + [int(r["max_lsb_diff"]) for r in layers]),
            "tensors_compared": len(layers), "tensors_differing": len(differing)}


def requantization_record(fid: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest/fidelity.json "requantization" entry: what the dyadic passes did (None: free scales) and, as
    "measured", how far the runtimes agreed (`measured_agreement`)."""
    r = fid.get("requantization")
    return None if r is None else {**r, "measured": measured_agreement(fid)}


def _measured_sentence(fid: dict[str, Any]) -> str:
    m = measured_agreement(fid)
    if m["identical"]:
        return MEASURED_SAME.format(tensors=m["tensors_compared"], n=m["n"])
    return MEASURED_DIFFERENT.format(differing=m["tensors_differing"], tensors=m["tensors_compared"],
                                     max=m["max_lsb_diff"], out_max=m["output_max_lsb_diff"], n=m["n"])


def _rounding_section(fid: dict[str, Any]) -> list[str]:
    """How ONNX int8 and TFLite round, with the per-tensor differences end to end (all zero when dyadic works)."""
    p = fid.get("int8_onnx_vs_tflite_per_op") or {}
    layers = p.get("end_to_end")
    if not layers:
        return []
    ort = p.get("onnxruntime", "ONNX Runtime")
    how = (DYADIC_NOTE.format(ort=ort, measured=_measured_sentence(fid)) if fid.get("dyadic", True)
           else FREE_NOTE.format(ort=ort))
    rows = ["## ONNX int8 ↔ TFLite: the rounding of each requantization", "", ROUNDING_NOTE.format(how=how), "",
            "| tensor | values | 1 LSB | 2 LSB | ≥3 LSB | max |", "|---|---|---|---|---|---|"]
    rows += [f"| {r['tensor']} | {r['values']} | {r['lsb1']} | {r['lsb2']} | {r['lsb3_plus']} | {r['max_lsb_diff']} |"
             for r in layers]
    return rows + [""]
