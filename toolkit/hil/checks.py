"""Verdicts on a profile: did the device give the reference outputs, keep the accuracy, and was it the
requested target? `edgetk validate` exits on them; `edgetk profile` prints the same verdicts.

Scoring turns device outputs into figures (`score`); `evaluate` turns a report's figures into checks
(pure: a report dict and limits in, checks out).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from toolkit.hil.bundle import Bundle
from toolkit.hil.fidelity import agreement

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
HOST_RAW = "host C frontend + TFLite-Micro reference kernels on the same raw windows"


@dataclass(frozen=True)
class Limits:
    """What a run must meet. `edgetk profile` allows a fallback (reported as a warning); validate does not."""

    max_lsb: int = 0               # largest |device - reference| of any output value, in int8 steps
    max_drop: float = 0.0          # reference accuracy minus device accuracy (fractions: 0.01 = 1 point)
    allow_fallback: bool = True    # a stand-in (emulator, host simulator, estimate) for the requested target
    need_outputs: bool = False     # no device outputs at all (analytic estimate) fails instead of skipping


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, the figure measured, the limit and pass/fail/warn/skip."""

    name: str
    verdict: str
    measured: Any
    limit: Any
    detail: str

    def line(self) -> str:
        """`FAIL outputs_vs_golden: ...` (one line per check)."""
        return f"{self.verdict.upper():4s} {self.name}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def failed(checks: list[Check] | tuple[Check, ...]) -> list[Check]:
    """The checks that failed."""
    return [c for c in checks if c.verdict == FAIL]


# ---- scoring: device outputs -> figures -----------------------------------------------------------

def compare(name: str, device: np.ndarray, reference: np.ndarray, zero_point: int = 0) -> dict[str, Any]:
    """Device int8 outputs vs one reference: max LSB, samples that differ, agreement figures."""
    d = device.reshape(len(device), -1).astype(np.int64)
    r = reference.reshape(len(reference), -1).astype(np.int64)
    per = np.abs(d - r).max(axis=1) if d.size else np.zeros(0, np.int64)
    return {"reference": name, "samples": int(len(d)), "samples_differing": int((per > 0).sum()),
            "max_lsb_diff": int(per.max(initial=0)), **{k: v for k, v in agreement(d, r, zero_point=zero_point).items() if k != "samples"}}


def _dequantize(q: np.ndarray, rec: dict[str, Any]) -> np.ndarray:
    scale, zp = rec.get("scale", 1.0), rec.get("zero_point", 0)
    scale = float(scale[0] if isinstance(scale, list) else scale)
    zp = int(zp[0] if isinstance(zp, list) else zp)
    return (q.astype(np.float32) - zp) * np.float32(scale)


def _io(bundle: Bundle, which: str) -> dict[str, Any]:
    rec = bundle.io(which)
    if "scale" in rec:
        return rec
    from toolkit.tflite import read_model

    g = read_model(bundle.tflite)
    q = g.tensor((g.inputs if which == "input" else g.outputs)[0]).quant
    return {"scale": q.scale[0], "zero_point": q.zero_point[0]} if q else {}


def accuracy(bundle: Bundle, n: int, device: np.ndarray, reference: np.ndarray,
             reference_name: str) -> tuple[dict[str, Any] | None, str]:
    """Accuracy from the device outputs and from the reference outputs on the same labelled samples.

    Classification: top-1 (argmax vs label); anomaly (autoencoder, labels 0/1): ROC AUC of the
    reconstruction error. Returns (figures, "") or (None, why it cannot be measured).
    """
    if bundle.y is None:
        return None, f"no labels ({bundle.inputs_label})"
    from toolkit.export.fidelity import task_metric

    y, k = bundle.y[:n], len(device)
    y = y[:k]
    if bundle.kind == "anomaly":
        if set(np.unique(y).tolist()) != {0, 1}:
            return None, f"anomaly labels must hold both 0 and 1 on the samples run (got {sorted(set(y.tolist()))})"
        x = _dequantize(bundle.x[:k], _io(bundle, "input"))
        rec = _io(bundle, "output")
        metric = "ROC AUC of the reconstruction error"
        dev, ref = (task_metric("anomaly", _dequantize(o, rec), x, y) for o in (device, reference))
    else:
        classes = int(np.prod(device.shape[1:]))
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= classes:
            return None, f"labels are not class indices 0..{classes - 1}"
        metric = "top-1"
        dev, ref = (task_metric("classification", o, None, y) for o in (device, reference))
    return {"metric": metric, "device": dev, "reference": ref, "drop": ref - dev, "samples": int(k),
            "reference_source": reference_name, "labels": "test_y.npy of the bundle"}, ""


def score(bundle: Bundle, device: np.ndarray | None, tflm: np.ndarray | None, *, raw: bool = False) -> dict[str, Any]:
    """comparisons (vs the bundle's golden outputs and vs TFLite-Micro) and accuracy, for the report.

    raw=True: the device ran from raw samples and `tflm` is TFLite-Micro on the host C frontend's features of
    the same raw windows. The accuracy reference is the bundle's golden outputs when it has them (so a model
    changed after export shows as a drop), else the host run."""
    if device is None or len(device) == 0:
        return {"comparisons": [], "accuracy": None, "accuracy_skipped": "no device outputs"}
    k = len(device)
    refs = []
    if bundle.reference_out is not None:
        refs.append(("golden test_out_int8.npy of the bundle", bundle.reference_out[:k]))
    if tflm is not None:
        refs.append((HOST_RAW if raw else "TFLite-Micro reference kernels on this host", tflm[:k]))
    zp = _io(bundle, "output").get("zero_point", 0)
    zp = int(zp[0] if isinstance(zp, list) else zp)
    comps = [compare(name, device, ref.reshape(device.shape), zp) for name, ref in refs]
    acc_ref = refs[0] if refs else None
    acc, why = accuracy(bundle, k, device, acc_ref[1].reshape(device.shape), acc_ref[0]) if acc_ref else (None, "no reference")
    return {"comparisons": comps, "accuracy": acc, "accuracy_skipped": why}


# ---- verdicts: report -> checks -------------------------------------------------------------------

def _target_check(report: dict[str, Any], limits: Limits) -> Check:
    want, ran = report["target"], report["ran_on"]
    if ran == want:
        return Check("target", PASS, ran, want, f"ran on the requested target {want}")
    why = "; ".join(f"{f['target']}: {f['reason']}" for f in report.get("fallbacks", []))
    detail = (f"requested {want} but the figures come from {ran} ({why}); "
              f"they are {ran}'s figures, not {want}'s")
    return Check("target", WARN if limits.allow_fallback else FAIL, ran, want,
                 detail + ("" if limits.allow_fallback else "; pass --allow-fallback to accept a stand-in"))


def _device_check(report: dict[str, Any], limits: Limits) -> Check:
    err = report.get("device_error")
    if err:
        return Check("device", FAIL, err, "no error", f"the device failed during the run: {err}")
    if report["ran_on"] == "estimate":
        return Check("device", FAIL if limits.need_outputs else SKIP, "none", "a device",
                     "no device ran: the figures are an analytic estimate")
    return Check("device", PASS, "ok", "no error", f"{report['ran_on']} ran every sample without an error")


def _output_checks(report: dict[str, Any], limits: Limits) -> list[Check]:
    comps = report.get("comparisons") or []
    if not comps:
        return [Check("outputs", FAIL if limits.need_outputs else SKIP, None, limits.max_lsb,
                      "no device outputs to compare")]
    out = []
    for c in comps:
        name = "outputs_vs_golden" if c["reference"].startswith("golden") else "outputs_vs_tflm"
        ok = c["max_lsb_diff"] <= limits.max_lsb
        exact = "bit-exact" if c["max_lsb_diff"] == 0 else f"max {c['max_lsb_diff']} LSB apart"
        out.append(Check(name, PASS if ok else FAIL, c["max_lsb_diff"], limits.max_lsb,
                         f"device outputs vs {c['reference']}: {exact}, {c['samples_differing']} of "
                         f"{c['samples']} samples differ (limit {limits.max_lsb} LSB)"))
    return out


def _accuracy_check(report: dict[str, Any], limits: Limits) -> Check:
    a = report.get("accuracy")
    if not a:
        return Check("accuracy", SKIP, None, limits.max_drop,
                     f"not measured: {report.get('accuracy_skipped') or 'no labels'}")
    ok = a["drop"] <= limits.max_drop + 1e-12
    return Check("accuracy", PASS if ok else FAIL, a["drop"], limits.max_drop,
                 f"{a['metric']} from the device outputs {a['device']:.4f} vs {a['reference']:.4f} from the "
                 f"{a['reference_source']} on {a['samples']} labelled samples: drop {a['drop']:+.4f} "
                 f"(limit {limits.max_drop:g})")


def features_text(fe: dict[str, Any]) -> str:
    """`device == training on 40/40 windows (bit-exact, QEMU mps2-an386 (Cortex-M4F))` (pure; the summary's
    `features` line and the features check say the same)."""
    if not fe.get("ran"):
        return f"not compared: {fe.get('why', 'the raw path did not run')}"
    n, k = fe["windows"], fe["equal"]
    if fe["bit_exact"]:
        return f"device == training on {k}/{n} windows (bit-exact, {fe['device']})"
    if not n:
        return f"no windows compared ({fe['device']})"
    return (f"device != training on {n - k}/{n} windows ({k} equal; up to {fe['max_lsb_diff']} LSB apart, first at "
            f"window {fe['first_differing']}; {fe['device']})")


def _features_check(report: dict[str, Any]) -> list[Check]:
    """Device features vs the training features (bundles with a frontend only)."""
    fe = report.get("frontend")
    if not fe:
        return []
    if not fe.get("ran"):
        return [Check("features", SKIP, None, 0, features_text(fe))]
    ok = fe["bit_exact"]
    return [Check("features", PASS if ok else FAIL, fe["windows"] - fe["equal"], 0,
                  f"{features_text(fe)}; reference: {fe['reference']}")]


def evaluate(report: dict[str, Any], limits: Limits) -> list[Check]:
    """Every check of a profile report under the given limits (pure)."""
    return [_target_check(report, limits), _device_check(report, limits), *_features_check(report),
            *_output_checks(report, limits), _accuracy_check(report, limits)]
