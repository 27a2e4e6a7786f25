"""The bundle stage: `write(BundleInputs)` turns an fp32 ONNX model plus data into a BUNDLE. Needs no torch.

Two callers feed it: `export_run` (a training run, toolkit/export/bundle.py) and `edgetk import` (an external
model, toolkit/importer). Both get the same quantizers (toolkit.quant), the same QDQ → TFLite lowering
(toolkit/export/lower.py), the same fidelity report and the same manifest (ARCHITECTURE.md, BUNDLE);
toolkit.hil.bundle.load_bundle reads the result back.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import __version__
from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file
from toolkit.progress import stage

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tflite", "c")
PER_OP_SAMPLES = 2000  # test samples for the op-by-op and per-layer ONNX ↔ TFLite checks
FP32, INT8, TFLITE = "model_fp32.onnx", "model_int8.onnx", "model_int8.tflite"
ANOMALY_SIGMAS = 3  # anomaly decisions: score > mean + 3 std of the float model's scores on the calibration
#                     inputs (normal data): "beyond 3 standard deviations of normal"


@dataclass(frozen=True, eq=False)
class BundleInputs:
    """Everything the bundle stage needs; arrays are float32 in the ONNX layout (NCHW, or [N, F])."""

    task: str                          # task name (recipe task, or the imported model's name)
    title: str                         # heading of fidelity.md
    fp32_onnx: bytes                   # the float model, single-input single-output, batch 1
    calib_x: np.ndarray                # calibration inputs
    test_x: np.ndarray                 # test inputs
    test_y: np.ndarray | None          # their labels (anomaly: 0/1), None when unlabelled
    reference_out: np.ndarray          # the float source model's outputs on test_x
    kind: str = "classification"       # classification | anomaly | regression
    labels: tuple[str, ...] = ()
    frontend: dict[str, Any] = field(default_factory=dict)
    reference: str = "torch"           # fidelity.json key of the float source: "torch" (a run) | "source" (import)
    reference_name: str = "torch fp32"  # how fidelity.md names it
    quantizer: str = "nncf"            # toolkit.quant.QUANTIZERS
    dyadic: bool = True                # integer-exact requantization (toolkit.quant.dyadic)
    formats: tuple[str, ...] = ("onnx", "tflite")
    input_qparams: tuple[float, int] | None = None  # pin the model input's (scale, zero point)
    export: dict[str, Any] = field(default_factory=dict)   # manifest "export": how it was quantized
    source: dict[str, Any] = field(default_factory=dict)   # manifest "source": training run | imported model
    data: dict[str, Any] = field(default_factory=dict)     # manifest "data": provenance of calib and test inputs
    recorded_metric: float | None = None  # the metric the source recorded (a run's metrics.json)
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    test_raw: np.ndarray | None = None  # the test windows before the frontend (int16), with a C frontend only


def check_formats(formats: tuple[str, ...]) -> tuple[str, ...]:
    """The formats, or an error naming the unknown ones."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise EdgetkError(f"unknown export format(s) {bad}", fix=f"choose from: {', '.join(FORMATS)}")
    return tuple(formats)


def write(inputs: BundleInputs, out_dir: str | os.PathLike) -> Path:
    """Write the bundle atomically (the folder appears whole or not at all); returns it."""
    out = Path(out_dir)
    t0 = time.monotonic()
    with atomic_dir(out) as tmp:
        write_files(inputs, tmp)
    log.info("bundle %s written in %.1f s", out, time.monotonic() - t0)
    return out


def write_files(inputs: BundleInputs, out: Path) -> None:
    """Write every bundle file into the (temporary) folder `out`."""
    import onnx

    from toolkit.export.fidelity import markdown
    from toolkit.export.lower import lower_qdq
    from toolkit.quant import quantize_onnx

    check_formats(inputs.formats)
    atomic_write_bytes(out / FP32, inputs.fp32_onnx)
    with stage(f"quantize: {inputs.quantizer} on {len(inputs.calib_x)} calibration samples"):
        q = quantize_onnx(out / FP32, inputs.calib_x, inputs.quantizer, dyadic=inputs.dyadic,
                          input_qparams=inputs.input_qparams)
    atomic_write_bytes(out / INT8, q.SerializeToString())
    with stage("TFLite: lower the QDQ graph"):
        lowered = lower_qdq(onnx.load(str(out / INT8)))
        atomic_write_bytes(out / TFLITE, lowered.tflite)
        check_no_transpose(out / TFLITE)
    with stage(f"fidelity: ONNX Runtime, LiteRT, TFLite-Micro on {len(inputs.test_x)} test samples"):
        fid = _fidelity(inputs, out, lowered)
    fid["metrics"]["run_recorded"] = inputs.recorded_metric
    atomic_write_json(out / "fidelity.json", fid)
    atomic_write_text(out / "fidelity.md", markdown(fid, inputs.title))
    fe_info = frontend_files(inputs, out)
    if "c" in inputs.formats:
        with stage("C: generate the library"):
            codegen(out, fe_info)
    arena = arena_bytes(out / TFLITE)
    atomic_write_json(out / "manifest.json", manifest(inputs, out, lowered, fid, arena))


def _fidelity(inputs: BundleInputs, out: Path, lowered: Any) -> dict[str, Any]:
    import onnx

    from toolkit.export.fidelity import QParams, measure, requantization_record, to_nhwc
    from toolkit.export.per_op import per_op_diff
    from toolkit.quant.dyadic import is_dyadic, requantization_info
    from toolkit.runtimes import run_litert, run_onnx, run_tflm

    x, y = inputs.test_x, inputs.test_y
    in_q = QParams(lowered.input.scale, lowered.input.zero_point)
    out_q = QParams(lowered.output.scale, lowered.output.zero_point)
    xq = to_nhwc(in_q.quantize(x))
    lite = run_litert(out / TFLITE, xq, reference=True)
    outs = {inputs.reference: inputs.reference_out, "onnx_fp32": run_onnx(out / FP32, x),
            "onnx_int8": run_onnx(out / INT8, x), "onnx_int8_ort_defaults": run_onnx(out / INT8, x, int8_kernels=False),
            "litert_ref": lite, "tflm": run_tflm(out / TFLITE, xq)}
    np.save(out / "test_x_int8.npy", xq)
    if y is not None:
        np.save(out / "test_y.npy", y)
    np.save(out / "test_out_int8.npy", lite)
    threshold = _anomaly_threshold(out / FP32, inputs) if inputs.kind == "anomaly" else None
    fid = measure(inputs.kind, x, y, outs, out_q, reference=inputs.reference, threshold=threshold)
    fid["reference_name"], fid["data"] = inputs.reference_name, inputs.data
    int8 = onnx.load(str(out / INT8))
    fid["dyadic"], fid["requantization"] = is_dyadic(int8), requantization_info(int8)
    n = min(len(x), PER_OP_SAMPLES)
    fid["int8_onnx_vs_tflite_per_op"] = per_op_diff(int8, out / TFLITE, lowered.tensors,
                                                    xq[:n], in_q.dequantize(in_q.quantize(x[:n])))
    fid["requantization"] = requantization_record(fid)  # what the dyadic passes did + what this run measured
    return fid


def _anomaly_threshold(fp32: Path, inputs: BundleInputs) -> float:
    """The decision threshold: mean + ANOMALY_SIGMAS std of the float model's scores on the calibration inputs."""
    from toolkit.export.fidelity import anomaly_scores
    from toolkit.runtimes import run_onnx

    s = anomaly_scores(run_onnx(fp32, inputs.calib_x), inputs.calib_x).astype(np.float64)
    return float(s.mean() + ANOMALY_SIGMAS * s.std())


def check_no_transpose(path: Path) -> None:
    """Refuse a .tflite that contains a TRANSPOSE op."""
    from toolkit.export.tflite_writer import schema

    s = schema()
    m = s.Model.GetRootAs(path.read_bytes(), 0)
    codes = {max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())}
    if s.BuiltinOperator.TRANSPOSE in codes:
        raise EdgetkError(f"{path} contains a TRANSPOSE op", fix="report this as an edgetk bug")


def arena_bytes(path: Path) -> int | None:
    """TFLite-Micro's arena for the model (see toolkit.runtimes.tflm_arena_bytes)."""
    from toolkit.runtimes import tflm_arena_bytes

    return tflm_arena_bytes(path)


def codegen(out: Path, frontend: dict[str, Any] | None = None) -> None:
    """The generated C library of out/model_int8.tflite into out/c (with the frontend's C and edgetk_invoke_raw)."""
    if importlib.util.find_spec("toolkit.codegen") is None:
        raise EdgetkError("format 'c' needs toolkit.codegen, which is not installed",
                          fix="drop 'c' from --formats or update edgetk")
    from toolkit.codegen import generate

    generate(out / TFLITE, out / "c", frontend=frontend)


FRONTEND_JSON, TEST_RAW = "frontend.json", "test_raw_int16.npy"


def frontend_files(inputs: BundleInputs, out: Path) -> dict[str, Any] | None:
    """With a C frontend: frontend.json (its info: the C regenerates from it bit for bit) and the golden raw
    vectors test_raw_int16.npy, after checking that the host C turns them into test_x_int8.npy exactly."""
    info = inputs.frontend or {}
    if not info.get("implementation") or inputs.test_raw is None:
        return None
    from toolkit.frontends import frontend_from_info

    fe = frontend_from_info(info)
    if fe.info()["cache_key"] != info.get("cache_key"):
        raise EdgetkError("the frontend recorded with the data regenerates different C in this edgetk",
                          fix="retrain the run with this edgetk so device and training features match")
    raw = fe.raw_i16(inputs.test_raw)
    xq = np.load(out / "test_x_int8.npy", allow_pickle=False)
    feats = fe.features(raw)
    if len(raw) != len(xq) or not np.array_equal(feats.reshape(xq.shape), xq):
        raise EdgetkError(f"the frontend's features of the {len(raw)} raw test windows are not the model's "
                          f"{len(xq)} int8 test inputs", fix="report this as an edgetk bug (the input pin or the "
                          "raw windows do not belong to this run)")
    np.save(out / TEST_RAW, raw)
    atomic_write_json(out / FRONTEND_JSON, info)
    return info


def _tensor_info(act: Any, name: str) -> dict[str, Any]:
    return {"name": name, "shape": list(act.tfl_shape), "onnx_shape": list(act.onnx_shape), "dtype": "int8",
            "layout": "NHWC" if len(act.onnx_shape) == 4 else "flat", "scale": act.scale,
            "zero_point": act.zero_point}


def file_records(out: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file in the bundle but the manifest."""
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    return {str(p.relative_to(out)): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files}


def manifest(inputs: BundleInputs, out: Path, lowered: Any, fid: dict[str, Any], arena: int | None) -> dict:
    """manifest.json: hashes and sizes of every file, I/O quantization, labels, frontend, ops, costs, provenance."""
    from toolkit.runtimes import INT8_KERNELS

    m = fid["metrics"]
    return {
        "format_version": 1, "edgetk_version": __version__, "task": inputs.task, "kind": inputs.kind,
        "labels": list(inputs.labels), "frontend": inputs.frontend,
        "metric": fid["metric"], "fp32_metric": m.get("onnx_fp32"), "int8_metric": m.get("tflite_int8"),
        "float_vs_int8": fid["float_vs_int8_tflite"],
        "export": inputs.export, "source": inputs.source, "data": inputs.data,
        "input": _tensor_info(lowered.input, "input"), "output": _tensor_info(lowered.output, "output"),
        "ops": lowered.ops, "params": lowered.params, "macs": lowered.macs, "tflm_arena_bytes": arena,
        "onnxruntime_session_config": dict(INT8_KERNELS),  # runs every QDQ op on integer kernels (see runtimes)
        "requantization": fid.get("requantization"),       # what toolkit.quant.dyadic did; None: free scales
        **inputs.manifest_extra,
        "test_set": {"x": "test_x_int8.npy", "y": "test_y.npy" if inputs.test_y is not None else None,
                     "reference_out": "test_out_int8.npy", "n": int(len(inputs.test_x)),
                     **({"raw": TEST_RAW, "frontend": FRONTEND_JSON,
                         "features": "test_x_int8.npy = the frontend's int8 features of test_raw_int16.npy "
                                     "(host build of the frontend C)"} if (out / TEST_RAW).is_file() else {})},
        "files": file_records(out),
    }
