"""export_run: a trained run → BUNDLE (ONNX fp32 + int8 QDQ, TFLite full int8, manifest, fidelity)."""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from toolkit import __version__
from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tflite", "c")
PER_OP_SAMPLES = 2000  # test samples for the op-by-op and per-layer ONNX ↔ TFLite checks (the whole split here)
METRIC_TOLERANCE = 0.02  # reloaded weights vs metrics.json; batch-order float noise stays far below
FP32, INT8, TFLITE = "model_fp32.onnx", "model_int8.onnx", "model_int8.tflite"
PEFT_KEYS = ("finetune_mode", "deployed", "extra_params", "extra_macs", "base_params", "base_macs")  # metrics.json


@dataclass(frozen=True)
class ExportConfig:
    """How a run is exported."""

    quantizer: str = "nncf"                   # nncf (default) | ort
    calib: int = 200                          # calibration samples from the training split
    qat: bool = False                         # fake-quant fine-tuning before PTQ (toolkit.quant.qat)
    formats: tuple[str, ...] = ("onnx", "tflite")  # both always written (fidelity needs them); "c" adds C
    seed: int = 0                             # calibration sample draw
    dyadic: bool = True                       # integer-exact requantization (toolkit.quant.dyadic)

    def validate(self) -> ExportConfig:
        """Check the fields; returns self."""
        from toolkit.quant import QUANTIZERS

        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            raise EdgetkError(f"unknown export format(s) {bad}", fix=f"choose from: {', '.join(FORMATS)}")
        if self.quantizer not in QUANTIZERS:
            raise EdgetkError(f"unknown quantizer {self.quantizer!r}", fix=f"choose one of: {', '.join(QUANTIZERS)}")
        if self.calib <= 0:
            raise EdgetkError(f"calib must be positive, got {self.calib}", fix="use e.g. --calib 200")
        return self


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, quantizer: str = "nncf",
               calib: int = 200, qat: bool = False, formats: tuple[str, ...] = ("onnx", "tflite"),
               dyadic: bool = True) -> Path:
    """Quantize a finished run once and write its bundle atomically; returns the bundle folder."""
    cfg = ExportConfig(quantizer, calib, qat, tuple(formats), dyadic=dyadic).validate()
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "bundle"
    t0 = time.monotonic()
    with _torch_threads(1):
        run = load_run_checked(run_dir)
        with atomic_dir(out) as tmp:
            write_bundle(run, tmp, cfg)
    log.info("bundle %s written in %.1f s", out, time.monotonic() - t0)
    return out


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Batch-1 export work: extra intra-op threads only spin (and results stay reproducible)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_run_checked(run_dir: str | os.PathLike) -> Any:
    """toolkit.train.load_run with every failure turned into an EdgetkError, and finite weights."""
    from toolkit.train import load_run

    d = Path(run_dir)
    if not d.is_dir():
        raise EdgetkError(f"run folder not found: {d}", fix="pass a folder written by `edgetk train`")
    try:
        run = load_run(d)
    except EdgetkError:
        raise
    except Exception as e:
        raise EdgetkError(f"cannot read the run in {d}: {type(e).__name__}: {str(e)[:200]}",
                          fix="the run files are damaged; re-train the run") from None
    bad = [k for k, v in run.model.state_dict().items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise EdgetkError(f"{d / 'model.safetensors'} holds non-finite weights in {bad[:3]}",
                          fix="the weights are damaged; re-train the run")
    check_reproduces_metric(run)
    return run


def check_reproduces_metric(run: Any) -> None:
    """The loaded weights must reproduce the test metric recorded at training time (catches damaged weights)."""
    from toolkit.export.fidelity import task_metric
    from toolkit.export.onnx_fp32 import torch_outputs

    recorded = run.metrics.get("value")
    out = torch_outputs(run.model, run.data.x_test)
    got = task_metric(run.data.kind, out, run.data.x_test, run.data.y_test) if np.isfinite(out).all() else float("nan")
    if recorded is not None and not abs(float(recorded) - got) <= METRIC_TOLERANCE:
        raise EdgetkError(f"{run.dir / 'model.safetensors'} gives {run.metrics.get('metric', 'metric')} {got:.4f} "
                          f"on the test split, but metrics.json records {float(recorded):.4f}",
                          fix="the weights or the data changed since training; re-train the run")


def write_bundle(run: Any, out: Path, cfg: ExportConfig) -> None:
    """Write every bundle file of `run` into the (temporary) folder `out`."""
    import onnx

    from toolkit.export.fidelity import markdown
    from toolkit.export.lower import lower_qdq
    from toolkit.export.onnx_fp32 import export_fp32
    from toolkit.quant import calibration_set, quantize_onnx

    model, data = run.model, run.data
    if cfg.qat:
        from toolkit.quant.qat import qat_finetune

        model = qat_finetune(model, data, seed=cfg.seed)
    export_fp32(model, data.x_test[0], out / FP32)
    calib = calibration_set(data.x_train, cfg.calib, cfg.seed)
    q = quantize_onnx(out / FP32, calib, cfg.quantizer, dyadic=cfg.dyadic)
    atomic_write_bytes(out / INT8, q.SerializeToString())
    lowered = lower_qdq(onnx.load(str(out / INT8)))
    atomic_write_bytes(out / TFLITE, lowered.tflite)
    check_no_transpose(out / TFLITE)
    fid = _fidelity(model, data, out, lowered)
    fid["metrics"]["run_recorded"] = run.metrics.get("value")  # the trained model's metric (before QAT)
    atomic_write_json(out / "fidelity.json", fid)
    atomic_write_text(out / "fidelity.md", markdown(fid, f"{run.recipe.task} ({cfg.quantizer}{', QAT' if cfg.qat else ''})"))
    if "c" in cfg.formats:
        _codegen(out)
    arena = _arena(out / TFLITE)
    atomic_write_json(out / "manifest.json", manifest(run, out, cfg, lowered, fid, arena))


def _fidelity(model: Any, data: Any, out: Path, lowered: Any) -> dict[str, Any]:
    import onnx

    from toolkit.export.fidelity import QParams, measure, to_nhwc
    from toolkit.export.onnx_fp32 import torch_outputs
    from toolkit.export.per_op import per_op_diff
    from toolkit.quant.dyadic import is_dyadic, requantization_info
    from toolkit.runtimes import run_litert, run_onnx, run_tflm

    x, y = data.x_test, data.y_test
    in_q = QParams(lowered.input.scale, lowered.input.zero_point)
    out_q = QParams(lowered.output.scale, lowered.output.zero_point)
    xq = to_nhwc(in_q.quantize(x))
    lite = run_litert(out / TFLITE, xq, reference=True)
    outs = {"torch": torch_outputs(model, x), "onnx_fp32": run_onnx(out / FP32, x),
            "onnx_int8": run_onnx(out / INT8, x), "onnx_int8_ort_defaults": run_onnx(out / INT8, x, int8_kernels=False),
            "litert_ref": lite, "tflm": run_tflm(out / TFLITE, xq)}
    np.save(out / "test_x_int8.npy", xq)
    np.save(out / "test_y.npy", y)
    np.save(out / "test_out_int8.npy", lite)
    fid = measure(data.kind, x, y, outs, out_q)
    int8 = onnx.load(str(out / INT8))
    fid["dyadic"], fid["requantization"] = is_dyadic(int8), requantization_info(int8)
    n = min(len(x), PER_OP_SAMPLES)
    fid["int8_onnx_vs_tflite_per_op"] = per_op_diff(int8, out / TFLITE, lowered.tensors,
                                                    xq[:n], in_q.dequantize(in_q.quantize(x[:n])))
    return fid


def check_no_transpose(path: Path) -> None:
    """Refuse a .tflite that contains a TRANSPOSE op."""
    from toolkit.export.tflite_writer import schema

    s = schema()
    m = s.Model.GetRootAs(path.read_bytes(), 0)
    codes = {max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())}
    if s.BuiltinOperator.TRANSPOSE in codes:
        raise EdgetkError(f"{path} contains a TRANSPOSE op", fix="report this as an edgetk bug")


def _arena(path: Path) -> int | None:
    from toolkit.runtimes import tflm_arena_bytes

    return tflm_arena_bytes(path)


def _codegen(out: Path) -> None:
    if importlib.util.find_spec("toolkit.codegen") is None:
        raise EdgetkError("format 'c' needs toolkit.codegen, which is not installed",
                          fix="drop 'c' from --formats or update edgetk")
    from toolkit.codegen import generate

    generate(out / TFLITE, out / "c")


def _tensor_info(act: Any, name: str) -> dict[str, Any]:
    return {"name": name, "shape": list(act.tfl_shape), "onnx_shape": list(act.onnx_shape), "dtype": "int8",
            "layout": "NHWC" if len(act.onnx_shape) == 4 else "flat", "scale": act.scale,
            "zero_point": act.zero_point}


def manifest(run: Any, out: Path, cfg: ExportConfig, lowered: Any, fid: dict[str, Any], arena: int | None) -> dict:
    """manifest.json: hashes and sizes of every file, I/O quantization, labels, frontend, ops, costs."""
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    from toolkit.runtimes import INT8_KERNELS

    data = run.data
    return {
        "format_version": 1, "edgetk_version": __version__, "task": run.recipe.task, "kind": data.kind,
        "labels": list(data.labels), "frontend": data.frontend,
        "metric": fid["metric"], "fp32_metric": fid["metrics"]["onnx_fp32"], "int8_metric": fid["metrics"]["tflite_int8"],
        "export": asdict(cfg) | {"formats": list(cfg.formats)},
        "input": _tensor_info(lowered.input, "input"), "output": _tensor_info(lowered.output, "output"),
        "ops": lowered.ops, "params": lowered.params, "macs": lowered.macs, "tflm_arena_bytes": arena,
        "onnxruntime_session_config": dict(INT8_KERNELS),  # runs every QDQ op on integer kernels (see runtimes)
        "requantization": fid.get("requantization"),       # what toolkit.quant.dyadic did; None: free scales
        **({"finetune": peft} if (peft := {k: run.metrics[k] for k in PEFT_KEYS if k in run.metrics}) else {}),
        "test_set": {"x": "test_x_int8.npy", "y": "test_y.npy", "reference_out": "test_out_int8.npy",
                     "n": int(len(data.x_test))},
        "files": {str(p.relative_to(out)): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files},
    }
