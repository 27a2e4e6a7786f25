"""Post-training int8 quantization of an fp32 ONNX model into QDQ form: NNCF (default) or onnxruntime."""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.progress import third_party

log = logging.getLogger(__name__)


def calibration_set(x_train: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`n` training samples drawn without replacement (all of them when fewer)."""
    if n <= 0:
        raise EdgetkError(f"--calib must be positive, got {n}", fix="use e.g. --calib 200")
    idx = np.random.default_rng(seed).permutation(len(x_train))[:n]
    return np.ascontiguousarray(x_train[np.sort(idx)], dtype=np.float32)


def _nncf(proto: Any, calib: np.ndarray) -> Any:
    # NNCF's telemetry forks a child per event to upload usage data (no consent asked); the child outlived a
    # SIGKILLed export. NNCF_CI is NNCF's own switch that turns its telemetry off.
    os.environ.setdefault("NNCF_CI", "1")
    import nncf
    from nncf.common.quantization.structs import QuantizationScheme
    from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters, OverflowFix,
                                                       QuantizationParameters)
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    name = proto.graph.input[0].name
    adv = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.DISABLE,
        # the default averages per-sample extremes and clips outliers: fatal for autoencoders
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
        activations_quantization_params=QuantizationParameters(
            num_bits=8, mode=QuantizationScheme.ASYMMETRIC, per_channel=False),
        weights_quantization_params=QuantizationParameters(per_channel=True))
    ds = nncf.Dataset(list(calib), lambda x: {name: x[None]})
    with third_party():  # NNCF's own bars and INFO log: drawn in edgetk's display on stderr, or nowhere
        return nncf.quantize(proto, ds, subset_size=len(calib), preset=nncf.QuantizationPreset.MIXED,
                             advanced_parameters=adv)


class _Reader:
    def __init__(self, name: str, calib: np.ndarray) -> None:
        self._it = iter([{name: x[None]} for x in calib])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _ort(proto: Any, calib: np.ndarray) -> Any:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        onnx.save(proto, src)
        with third_party():
            quantize_static(str(src), str(dst), _Reader(proto.graph.input[0].name, calib),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        return onnx.load(dst)


QUANTIZERS: dict[str, Callable[[Any, np.ndarray], Any]] = {"nncf": _nncf, "ort": _ort}


def quantize_onnx(fp32_path: str | os.PathLike, calib: np.ndarray, quantizer: str = "nncf",
                  dyadic: bool = True, input_qparams: tuple[float, int] | None = None) -> Any:
    """QDQ int8 ModelProto of an fp32 ONNX file, normalized for TFLite (see toolkit.quant.qdq) and, by default,
    with integer-exact requantization (see toolkit.quant.dyadic). input_qparams=(scale, zero_point) pins the
    graph input's quantization (a fixed-point frontend's int8 features, toolkit.frontends)."""
    import copy

    import onnx

    from toolkit.quant.dyadic import make_dyadic
    from toolkit.quant.qdq import normalize_qdq

    if quantizer not in QUANTIZERS:
        raise EdgetkError(f"unknown quantizer {quantizer!r}", fix=f"choose one of: {', '.join(QUANTIZERS)}")
    proto = load_onnx(fp32_path)
    log.info("quantizing %s with %s on %d calibration samples", Path(fp32_path).name, quantizer, len(calib))
    q = QUANTIZERS[quantizer](copy.deepcopy(proto), calib)
    if input_qparams is not None:  # before normalize_qdq: bias quantization and shared params then use it
        pin_input(q, *input_qparams)
    q = normalize_qdq(q, calib)
    if dyadic:
        make_dyadic(q, proto)
    if input_qparams is not None:
        check_input_pin(q, *input_qparams)
    onnx.checker.check_model(q)
    return q


def _input_quantizers(proto: Any) -> tuple[Any, list[Any]]:
    from toolkit.quant.graph import OnnxGraph

    g = OnnxGraph(proto)
    qs = [c for c in g.consumers[g.inputs[0]] if c.op_type == "QuantizeLinear"]
    if not qs:
        raise EdgetkError("the quantized model's input has no QuantizeLinear to pin to the frontend's quantization",
                          fix="report this with the model: the input must feed int8 operators")
    return g, qs


def pin_input(proto: Any, scale: float, zero_point: int) -> None:
    """Set the graph input's QuantizeLinear/DequantizeLinear to (scale, zero_point), in place."""
    from toolkit.quant.qdq import set_q

    g, qs = _input_quantizers(proto)
    for q in qs:
        set_q(g, q, np.float32(scale), np.int8(zero_point))


def check_input_pin(proto: Any, scale: float, zero_point: int) -> None:
    """The graph input still carries exactly (scale, zero_point) after every pass, else an EdgetkError."""
    from toolkit.quant.graph import qparams

    g, qs = _input_quantizers(proto)
    for q in qs:
        s, z = qparams(g, q)
        if float(np.asarray(s)) != float(np.float32(scale)) or int(np.asarray(z)) != int(zero_point):
            raise EdgetkError(f"the model input's quantization became scale {float(np.asarray(s))}, zero point "
                              f"{int(np.asarray(z))}, not the frontend's {scale}, {zero_point}",
                              fix="the first layer must consume the input directly (no Concat/Add with other "
                                  "tensors on the raw input); report this with the model")


def load_onnx(path: str | os.PathLike) -> Any:
    """Load and check an ONNX file; a truncated or corrupted file gives an EdgetkError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise EdgetkError(f"ONNX model not found: {path}", fix="export it first: edgetk export RUN_DIR")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as e:
        raise EdgetkError(f"{path} is not a valid ONNX model ({type(e).__name__}: {str(e)[:200]})",
                          fix="the file is truncated or corrupted; re-export it from the run") from e
    if not proto.graph.node:
        raise EdgetkError(f"{path} has an empty graph", fix="re-export it from the run")
    return proto
