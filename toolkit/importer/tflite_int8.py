"""An int8 .tflite wrapped as is into a bundle: the model copied, int8 test inputs, TFLite-Micro's outputs as
the golden answers, the generated C, a manifest and a fidelity report (LiteRT reference ↔ TFLite-Micro).

There is no int8 ONNX model in such a bundle: the int8 model was quantized elsewhere, and rebuilding a QDQ ONNX
graph from it would be a second model to keep equal, not a check of this one (the manifest says so).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import __version__
from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

NO_INT8_ONNX = ("the model came quantized (int8 TFLite): there is no float model to quantize again, and an int8 "
                "ONNX rebuilt from it would be a second model, not a check of this one")


def wrap_int8(path: Path, out: Path, cfg: Any) -> Path:
    """`edgetk import MODEL_int8.tflite`: data from cfg (toolkit.importer.ImportConfig), then the bundle."""
    from toolkit.importer import infer_kind, source_data
    from toolkit.importer.data import InputSpec
    from toolkit.tflite import read_model

    g = read_model(path)
    tin, tout = g.tensor(g.inputs[0]), g.tensor(g.outputs[0])
    if tin.quant is None or tout.dtype != "int8" or tout.quant is None:
        raise EdgetkError(f"{path}: int8 input but {tout.dtype} output (or no quantization parameters)",
                          fix="edgetk wraps full-int8 models (int8 input and output with scale and zero point)")
    q_in = (tin.quant.scale[0], tin.quant.zero_point[0])
    spec = InputSpec(tuple(tin.shape[1:]), "NHWC" if len(tin.shape) == 4 else "flat", q_in, cfg.input_range)
    _, test = source_data(cfg, spec)  # an int8 model needs no calibration: its test inputs are what count
    kind, why = infer_kind(cfg, test, spec.shape, tuple(tout.shape[1:]))
    xq = quantize(test.x, *q_in)
    return wrap_int8_tflite(path, out, xq, test.y, kind=kind, labels=tuple(cfg.labels or test.labels),
                            formats=cfg.formats, data={"test": test.provenance, "random": test.is_random},
                            name=cfg.name or path.stem, kind_from=why, frontend=test.frontend)


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float → int8 with the model input's parameters (round half to even, saturating)."""
    from toolkit.export.fidelity import QParams

    return QParams(float(scale), int(zero_point)).quantize(x)


def wrap_int8_tflite(tflite: str | Path, out_dir: str | Path, x_int8: np.ndarray, y: np.ndarray | None = None, *,
                     kind: str = "classification", labels: tuple[str, ...] = (), formats: tuple[str, ...] = ("tflite", "c"),
                     data: dict[str, Any] | None = None, name: str | None = None, kind_from: str = "",
                     frontend: dict[str, Any] | None = None) -> Path:
    """Write the bundle of an int8 .tflite for the int8 inputs x_int8 (TFLite layout) atomically; returns it."""
    from toolkit.export.writer import TFLITE, arena_bytes, codegen, file_records
    from toolkit.importer.data import RANDOM
    from toolkit.tflite import read_model

    tflite, out = Path(tflite), Path(out_dir)
    g = read_model(tflite)
    x_int8 = np.ascontiguousarray(x_int8, dtype=np.int8)
    data = data or {"test": {"source": "given", "n": int(len(x_int8)), "description": "int8 inputs given"}}
    with atomic_dir(out) as tmp:
        atomic_write_bytes(tmp / TFLITE, tflite.read_bytes())
        fid = _fidelity(tmp / TFLITE, x_int8, y, kind)
        fid["data"] = data
        np.save(tmp / "test_x_int8.npy", x_int8)
        if y is not None:
            np.save(tmp / "test_y.npy", y)
        atomic_write_json(tmp / "fidelity.json", fid)
        title = f"{name or tflite.stem} (int8 TFLite wrapped as is" + \
            (", RANDOM inputs)" if (data.get("test") or {}).get("source") == RANDOM else ")")
        atomic_write_text(tmp / "fidelity.md", markdown(fid, title))
        if "c" in formats:
            codegen(tmp)
        man = _manifest(g, tflite, tmp, fid, arena_bytes(tmp / TFLITE), kind=kind, labels=labels, formats=formats,
                        data=data, name=name or tflite.stem, kind_from=kind_from, frontend=frontend or {})
        man["files"] = file_records(tmp)
        atomic_write_json(tmp / "manifest.json", man)
    return out


def _fidelity(tflite: Path, x: np.ndarray, y: np.ndarray | None, kind: str) -> dict[str, Any]:
    from toolkit.export.fidelity import QParams, compare_int, task_metric
    from toolkit.runtimes import run_litert, run_tflm
    from toolkit.tflite import read_model

    lite = run_litert(tflite, x, reference=True)
    tflm = run_tflm(tflite, x)
    np.save(tflite.parent / "test_out_int8.npy", tflm)
    fid: dict[str, Any] = {"kind": kind, "n_test": int(len(x)), "reference": None, "labelled": y is not None,
                           "metric": None, "metrics": {}, "litert_ref_vs_tflm": compare_int(kind, lite, tflm),
                           "int8_onnx": None, "no_int8_onnx": NO_INT8_ONNX}
    if y is not None and kind in ("classification", "anomaly"):
        g = read_model(tflite)
        qi, qo = (g.tensor(g.inputs[0]).quant, g.tensor(g.outputs[0]).quant)
        xf = QParams(qi.scale[0], qi.zero_point[0]).dequantize(x)
        outf = QParams(qo.scale[0], qo.zero_point[0]).dequantize(tflm)
        fid["metric"] = "test_auc" if kind == "anomaly" else "test_top1"
        fid["metrics"] = {"tflite_int8": task_metric(kind, outf, xf, y)}
    return fid


def markdown(fid: dict[str, Any], title: str) -> str:
    """fidelity.md of a wrapped int8 model."""
    from toolkit.export.fidelity import data_lines

    b = fid["litert_ref_vs_tflm"]
    m = fid["metrics"].get("tflite_int8")
    rows = [f"# Fidelity: {title}", "", *data_lines(fid.get("data")),
            f"Test inputs: {fid['n_test']} samples" + (f"; {fid['metric']} {100 * m:.2f}." if m is not None else
                                                      " without labels: no task metric."),
            "", f"No int8 ONNX model: {fid['no_int8_onnx']}.", "",
            "| joint | figure |", "|---|---|",
            f"| LiteRT ref ↔ TFLite-Micro | {'bit-identical' if b['identical'] else 'DIFFERENT: max %d LSB' % b['max_lsb_diff']} |",
            ""]
    return "\n".join(rows)


def _io(t: Any, name: str) -> dict[str, Any]:
    from toolkit.importer.tflite_float import to_onnx_shape

    return {"name": name, "tensor": t.name, "shape": list(t.shape), "onnx_shape": list(to_onnx_shape(t.shape)),
            "dtype": t.dtype, "layout": "NHWC" if len(t.shape) == 4 else "flat",
            "scale": t.quant.scale[0] if t.quant else None, "zero_point": t.quant.zero_point[0] if t.quant else None}


def _manifest(g: Any, src: Path, out: Path, fid: dict[str, Any], arena: int | None, *, kind: str,
              labels: tuple[str, ...], formats: tuple[str, ...], data: dict[str, Any], name: str, kind_from: str,
              frontend: dict[str, Any]) -> dict[str, Any]:
    from toolkit.fsio import sha256_file
    from toolkit.tflite.stats import summary

    s = summary(g)
    return {
        "format_version": 1, "edgetk_version": __version__, "task": name, "kind": kind, "labels": list(labels),
        "frontend": frontend, "metric": fid["metric"], "fp32_metric": None,
        "int8_metric": fid["metrics"].get("tflite_int8"), "float_vs_int8": None,
        "export": {"quantizer": None, "wrapped": True, "formats": [f for f in formats if f != "onnx"]},
        "source": {"kind": "imported model", "path": str(src.resolve()), "sha256": sha256_file(src),
                   "format": "tflite-int8", "kind_from": kind_from},
        "data": data, "int8_onnx": None, "no_int8_onnx": NO_INT8_ONNX,
        "input": _io(g.tensor(g.inputs[0]), "input"), "output": _io(g.tensor(g.outputs[0]), "output"),
        "ops": dict(sorted(s["ops"].items())), "params": s["params"], "macs": s["macs"], "tflm_arena_bytes": arena,
        "onnxruntime_session_config": None, "requantization": None,
        "test_set": {"x": "test_x_int8.npy", "y": "test_y.npy" if fid["labelled"] else None,
                     "reference_out": "test_out_int8.npy", "n": fid["n_test"]},
    }
