"""`edgetk import`: an external model → the same BUNDLE `edgetk export` writes.

One registry entry per source format (SOURCES, keyed by toolkit.importer.sniff.model_format):
- float ONNX (any opset ≥ 7 onnx's version converter lifts): canonicalised (toolkit/importer/onnx_prep.py);
- float TFLite: converted to a float ONNX graph (toolkit/importer/tflite_float.py, which says why);
both then go through the same quantizers and the same bundle writer as a training run
(toolkit/export/writer.py), with the source model's own outputs as the float reference;
- int8 TFLite: wrapped as is (toolkit/importer/tflite_int8.py; no int8 ONNX, the manifest says why).
Calibration and test inputs: toolkit/importer/data.py (random inputs are labelled as such everywhere).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.importer.data import RANDOM, Inputs, InputSpec, load_inputs, random_inputs, subsample
from toolkit.importer.sniff import ONNX, TFLITE_FLOAT, TFLITE_INT8, model_format, read_model_bytes

log = logging.getLogger(__name__)

KINDS = ("classification", "anomaly", "regression")
DEFAULT_FORMATS = ("onnx", "tflite", "c")
RANDOM_TEST_N = 100  # random test inputs when no --test/--calib data is given


@dataclass(frozen=True)
class ImportConfig:
    """How a model is imported (built once by the CLI or a caller)."""

    calib: str | None = None          # data spec (toolkit.importer.data.load_inputs); None: random
    test: str | None = None           # data spec; None: the calibration source (its test split for a recipe)
    quantizer: str = "nncf"           # toolkit.quant.QUANTIZERS (float models)
    formats: tuple[str, ...] = DEFAULT_FORMATS
    labels: tuple[str, ...] = ()      # class names (else the recipe's)
    kind: str | None = None           # classification | anomaly | regression; None: recipe's, else inferred
    calib_n: int = 200                # calibration inputs drawn from the source (seeded)
    test_n: int | None = None         # test inputs kept (seeded draw); None: all (random: RANDOM_TEST_N)
    input_quant: tuple[float, int] | None = None   # (scale, zero point) of int8 data and random inputs; a float
    #                                                model's int8 input is pinned to it (the same int8 inputs as
    #                                                the model's int8 twin: MLPerf Tiny's reference inputs)
    input_range: tuple[float, float] | None = None  # random inputs: uniform over this range
    seed: int = 0
    dyadic: bool = True               # integer-exact requantization (toolkit.quant.dyadic)
    name: str | None = None           # task name in the manifest (default: the model file's stem)

    def validate(self) -> ImportConfig:
        """Check the fields; returns self."""
        from toolkit.export.writer import check_formats
        from toolkit.quant import QUANTIZERS

        check_formats(self.formats)
        if self.quantizer not in QUANTIZERS:
            raise EdgetkError(f"unknown quantizer {self.quantizer!r}", fix=f"choose one of: {', '.join(QUANTIZERS)}")
        if self.kind is not None and self.kind not in KINDS:
            raise EdgetkError(f"unknown kind {self.kind!r}", fix=f"choose one of: {', '.join(KINDS)}")
        if self.calib_n <= 0 or (self.test_n is not None and self.test_n <= 0):
            raise EdgetkError("--calib-n and --test-n must be positive", fix="use e.g. --calib-n 200")
        if self.input_range is not None and not self.input_range[0] < self.input_range[1]:
            raise EdgetkError(f"--input-range {list(self.input_range)} is empty", fix="pass LOW,HIGH with LOW < HIGH")
        return self


def import_model(model: str | os.PathLike, out_dir: str | os.PathLike, cfg: ImportConfig | None = None) -> Path:
    """Import `model` (float ONNX, float TFLite or int8 TFLite) into a bundle at out_dir; returns it."""
    cfg = (cfg or ImportConfig()).validate()
    path = Path(model)
    data = read_model_bytes(path)
    fmt = model_format(data, str(path))
    log.info("importing %s (%s)", path, fmt)
    return SOURCES[fmt](path, data, Path(out_dir), cfg)


# ---- data ----
def source_data(cfg: ImportConfig, spec: InputSpec) -> tuple[Inputs, Inputs]:
    """(calibration, test) inputs; a recipe gives both splits, any other source serves both roles."""
    calib_spec, test_spec = cfg.calib, cfg.test
    if calib_spec is None and test_spec is None:
        return (random_inputs(spec, cfg.calib_n, cfg.seed),
                random_inputs(spec, cfg.test_n or RANDOM_TEST_N, cfg.seed + 1))
    if _is_recipe(calib_spec) and test_spec is None:
        test_spec = calib_spec
    if _is_recipe(test_spec) and calib_spec is None:
        calib_spec = test_spec
    if calib_spec is not None and test_spec is not None:
        return (load_inputs(calib_spec, "calib", spec, n=cfg.calib_n, seed=cfg.seed),
                load_inputs(test_spec, "test", spec, n=cfg.test_n, seed=cfg.seed))
    role, given = ("calib", calib_spec) if calib_spec is not None else ("test", test_spec)
    whole = load_inputs(given, role, spec, n=None, seed=cfg.seed)
    other = "test" if role == "calib" else "calib"
    shared = replace(whole, provenance=whole.provenance | {
        "description": f"{whole.provenance['description']} (the {role} inputs: no --{other} given)"})
    return subsample(shared, cfg.calib_n, cfg.seed), subsample(shared, cfg.test_n, cfg.seed)


def _is_recipe(spec: str | None) -> bool:
    return spec is not None and spec.endswith(".toml")


def infer_kind(cfg: ImportConfig, test: Inputs, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[str, str]:
    """(kind, why): given, from the recipe, or inferred (output shape = input shape: an autoencoder → anomaly)."""
    if cfg.kind:
        return cfg.kind, "given (--kind)"
    if test.kind:
        return test.kind, "from the recipe"
    if int(np.prod(in_shape)) == int(np.prod(out_shape)):
        return "anomaly", "inferred: the output has the input's size (an autoencoder); pass --kind to override"
    return "classification", "inferred (default); pass --kind to override"


def to_onnx_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """Source-layout inputs in the ONNX graph's layout (NHWC → NCHW)."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if layout == "NHWC" and x.ndim == 4 else x


def _data_record(calib: Inputs, test: Inputs) -> dict[str, Any]:
    return {"calib": calib.provenance, "test": test.provenance,
            "random": bool(calib.is_random or test.is_random)}


def _source_record(path: Path, fmt: str, **extra: Any) -> dict[str, Any]:
    from toolkit.fsio import sha256_file

    return {"kind": "imported model", "path": str(path.resolve()), "sha256": sha256_file(path), "format": fmt, **extra}


# ---- float sources: ONNX and TFLite ----
def _import_float(path: Path, out: Path, cfg: ImportConfig, fmt: str, prep: Any,
                  reference: Callable[[np.ndarray], np.ndarray], reference_name: str, **source: Any) -> Path:
    """The common tail of both float sources: data, float reference outputs, the bundle writer."""
    from toolkit.export.writer import BundleInputs, write

    spec = InputSpec(prep.source_shape, prep.source_layout, cfg.input_quant, cfg.input_range)
    calib, test = source_data(cfg, spec)
    ref = reference(test.x)
    kind, kind_why = infer_kind(cfg, test, prep.source_shape, tuple(ref.shape[1:]))
    name = cfg.name or path.stem
    random_note = " on RANDOM inputs" if calib.is_random or test.is_random else ""
    inputs = BundleInputs(
        task=name, title=f"{name} (imported {fmt}, {cfg.quantizer}{random_note})",
        fp32_onnx=prep.proto.SerializeToString(), calib_x=to_onnx_layout(calib.x, prep.source_layout),
        test_x=to_onnx_layout(test.x, prep.source_layout), test_y=_labels_for(test, kind), reference_out=ref,
        kind=kind, labels=tuple(cfg.labels or test.labels), frontend=test.frontend,
        reference="source", reference_name=reference_name, quantizer=cfg.quantizer, dyadic=cfg.dyadic,
        formats=cfg.formats, input_qparams=cfg.input_quant,
        export={"quantizer": cfg.quantizer, "calib": int(len(calib.x)), "qat": False, "formats": list(cfg.formats),
                "seed": cfg.seed, "dyadic": cfg.dyadic},
        source=_source_record(path, fmt, input_layout=prep.source_layout, kind_from=kind_why, **source),
        data=_data_record(calib, test))
    return write(inputs, out)


def _labels_for(test: Inputs, kind: str) -> np.ndarray | None:
    if test.y is None:
        return None
    if kind == "classification":
        return np.asarray(test.y).astype(np.int64)
    return np.asarray(test.y)


def _import_onnx(path: Path, data: bytes, out: Path, cfg: ImportConfig) -> Path:
    from toolkit.importer.onnx_prep import parse, prepare

    original = parse(data, str(path))
    prep = prepare(parse(data, str(path)), str(path))
    return _import_float(path, out, cfg, ONNX, prep, lambda x: run_onnx_source(original, x, str(path)),
                         "source ONNX fp32 (ONNX Runtime)", opset=prep.opset, steps=list(prep.steps))


def run_onnx_source(proto: Any, x: np.ndarray, name: str) -> np.ndarray:
    """The ORIGINAL ONNX model's outputs, one sample at a time (its batch may be dynamic or 1)."""
    from toolkit.runtimes import onnx_session

    try:
        sess = onnx_session(proto.SerializeToString(), int8_kernels=False)
        feed = sess.get_inputs()[0].name
        outs = [sess.run(None, {feed: xi[None]})[0][0] for xi in x]
    except Exception as e:  # noqa: BLE001 - ONNX Runtime's own errors, for a model we did not write
        raise EdgetkError(f"ONNX Runtime cannot run the original {name} on the inputs ({type(e).__name__}: "
                          f"{str(e)[:200]})", fix="check that the data matches the model's input (shape, layout)"
                          ) from None
    return np.stack(outs).astype(np.float32)


def _import_tflite_float(path: Path, data: bytes, out: Path, cfg: ImportConfig) -> Path:
    from toolkit.importer.onnx_prep import Prepared, prepare
    from toolkit.importer.tflite_float import tflite_to_onnx
    from toolkit.tflite import read_bytes

    graph = read_bytes(data, name=str(path))
    prep = prepare(tflite_to_onnx(graph, str(path)), str(path))
    shape = tuple(graph.tensor(graph.inputs[0]).shape[1:])
    prep = Prepared(prep.proto, "NHWC" if len(shape) == 3 else "flat", shape, prep.opset, prep.steps)
    return _import_float(path, out, cfg, TFLITE_FLOAT, prep, lambda x: run_tflite_source(path, x),
                         "source TFLite fp32 (LiteRT)", ops=_op_counts(graph),
                         steps=["converted to a float ONNX graph (NHWC → NCHW, toolkit/importer/tflite_float.py)",
                                *prep.steps])


def run_tflite_source(path: Path, x: np.ndarray) -> np.ndarray:
    """The float .tflite's outputs in ONNX layout (LiteRT, reference kernels)."""
    from toolkit.runtimes import run_litert

    y = run_litert(path, x.astype(np.float32), reference=True).astype(np.float32)
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if y.ndim == 4 else y


def _op_counts(graph: Any) -> dict[str, int]:
    from collections import Counter

    return dict(sorted(Counter(op.op for op in graph.operators).items()))


def _import_tflite_int8(path: Path, data: bytes, out: Path, cfg: ImportConfig) -> Path:
    from toolkit.importer.tflite_int8 import wrap_int8

    return wrap_int8(path, out, cfg)


SOURCES: dict[str, Callable[[Path, bytes, Path, ImportConfig], Path]] = {
    ONNX: _import_onnx, TFLITE_FLOAT: _import_tflite_float, TFLITE_INT8: _import_tflite_int8,
}

__all__ = ["ImportConfig", "import_model", "SOURCES", "RANDOM"]
