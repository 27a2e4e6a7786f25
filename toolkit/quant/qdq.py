"""Normalize a QDQ ONNX graph so every quantized tensor maps 1:1 onto TFLite full-int8 semantics.

Passes (each exact or a documented requantization, applied to the ONNX model that ships):
uint8 activations become int8 (q - 128, zp - 128: bit-exact); the graph output gets a Q/DQ pair;
quantization-agnostic ops (MaxPool, Reshape, Pad, ...) and CONCATENATION share one scale and zero
point across their inputs and outputs, as TFLite requires; SOFTMAX outputs use 1/256, -128; float
biases become int32 with scale = input_scale × weight_scale per channel.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.quant.graph import OnnxGraph, qparams

log = logging.getLogger(__name__)

AGNOSTIC = frozenset({"MaxPool", "AveragePool", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Pad",
                      "Identity"})
PASS_THROUGH = AGNOSTIC | {"Concat"}  # after _unify_concat a Concat carries its inputs' params


def normalize_qdq(proto: Any, calib_x: np.ndarray) -> Any:
    """Apply every normalization pass in place and return the model."""
    g = OnnxGraph(proto)
    _signed_activations(g)
    _quantize_float_tensors(g, calib_x)
    _share_agnostic(g)
    _unify_concat(g)
    _share_agnostic(g)
    _softmax_output(g)
    _quantize_biases(g)
    drop_unused_initializers(proto)
    return proto


def int8_params(lo: float, hi: float) -> tuple[np.float32, np.int8]:
    """Asymmetric int8 scale and zero point covering [lo, hi] and 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return np.float32(scale), np.int8(zp)


def _q_nodes(g: OnnxGraph) -> list[Any]:
    return [n for n in g.proto.graph.node if n.op_type == "QuantizeLinear"]


def _signed_activations(g: OnnxGraph) -> None:
    for name in {n.input[2] for n in _q_nodes(g) if len(n.input) > 2}:
        zp = g.const(name)
        if zp is not None and zp.dtype == np.uint8:
            g.set_init(name, (zp.astype(np.int16) - 128).astype(np.int8))
    del g.proto.graph.value_info[:]  # stale uint8 types; onnx shape inference recomputes them
    g.reindex()


def set_q(g: OnnxGraph, q: Any, scale: Any, zp: Any) -> None:
    """Give QuantizeLinear `q` and every DequantizeLinear reading it the params (scale, zp)."""
    s_name = g.set_init(g.fresh(f"{q.output[0]}_scale"), np.asarray(scale, np.float32))
    z_name = g.set_init(g.fresh(f"{q.output[0]}_zp"), np.asarray(zp, np.int8))
    for n in [q] + [c for c in g.consumers[q.output[0]] if c.op_type == "DequantizeLinear"]:
        del n.input[1:]
        n.input.extend([s_name, z_name])
        for a in [a for a in n.attribute if a.name == "axis"]:
            n.attribute.remove(a)
    g.reindex()


NEEDS_INT8_INPUT = frozenset({"Conv", "Gemm", "Add", "Softmax", "ReduceMean", "GlobalAveragePool", "Concat"})


def _float_inputs(g: OnnxGraph) -> list[str]:
    """Activation tensors read by compute ops (or leaving the graph) that no QuantizeLinear covers."""
    names: list[str] = []
    for n in g.proto.graph.node:
        if n.op_type not in NEEDS_INT8_INPUT:
            continue
        acts = n.input[:1] if n.op_type in ("Conv", "Gemm") else [i for i in n.input if g.const(i) is None]
        names += [i for i in acts if i and source_q(g, i) is None and i not in names]
    for out in g.outputs:
        prod = g.producer.get(out)
        if (prod is None or prod.op_type != "DequantizeLinear") and out not in names:
            names.append(out)
    return names


def _quantize_float_tensors(g: OnnxGraph, calib_x: np.ndarray) -> None:
    """Insert a calibrated Q/DQ pair on every activation the quantizer left in float."""
    names = _float_inputs(g)
    if not names:
        return
    values = _run_bytes(g.proto.SerializeToString(), calib_x, names)
    for name, y in zip(names, values):
        _insert_qdq(g, name, *int8_params(y.min(), y.max()))


def _insert_qdq(g: OnnxGraph, name: str, scale: np.float32, zp: np.int8) -> None:
    from onnx import helper

    s = g.set_init(g.fresh(f"{name}_scale"), np.asarray(scale))
    z = g.set_init(g.fresh(f"{name}_zp"), np.asarray(zp))
    q, dq = g.fresh(f"{name}_q"), g.fresh(f"{name}_dq")
    nodes = list(g.proto.graph.node)
    at = nodes.index(g.producer[name]) + 1 if name in g.producer else 0
    if name in g.outputs:  # keep the graph output's name: it becomes the DQ's output
        inner = g.fresh(f"{name}_float")
        prod = g.producer[name]
        prod.output[list(prod.output).index(name)] = inner
        src, dst = inner, name
    else:
        for c in g.consumers[name]:
            c.input[list(c.input).index(name)] = dq
        src, dst = name, dq
    g.proto.graph.node.insert(at, helper.make_node("DequantizeLinear", [q, s, z], [dst], name=dst))
    g.proto.graph.node.insert(at, helper.make_node("QuantizeLinear", [src, s, z], [q], name=q))
    g.reindex()


def _run_bytes(model: bytes, x: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
    import onnx

    from toolkit.runtimes import onnx_session

    m = onnx.load_from_string(model)
    known = {o.name for o in m.graph.output}
    m.graph.output.extend([onnx.helper.make_empty_tensor_value_info(o) for o in outputs if o not in known])
    sess = onnx_session(m.SerializeToString(), int8_kernels=False)  # the calibration's ranges, as before
    name = sess.get_inputs()[0].name
    runs = [sess.run(outputs, {name: xi[None]}) for xi in x]
    return [np.stack([r[k] for r in runs]) for k in range(len(outputs))]


def source_q(g: OnnxGraph, tensor: str) -> Any | None:
    """The QuantizeLinear whose values a float tensor carries (through DQ and agnostic ops), else None."""
    prod = g.producer.get(tensor)
    while prod is not None and prod.op_type in PASS_THROUGH:
        prod = g.producer.get(prod.input[0])
    if prod is None or prod.op_type != "DequantizeLinear":
        return None
    q = g.producer.get(prod.input[0])
    return q if q is not None and q.op_type == "QuantizeLinear" else None


def _share_agnostic(g: OnnxGraph) -> None:
    for n in list(g.proto.graph.node):
        if n.op_type not in PASS_THROUGH:
            continue
        src = source_q(g, n.input[0])
        if src is None:
            continue
        scale, zp = qparams(g, src)
        for c in list(g.consumers[n.output[0]]):
            if c.op_type == "QuantizeLinear":
                cs, cz = qparams(g, c)
                if not (np.array_equal(cs, scale) and np.array_equal(cz, zp)):
                    set_q(g, c, scale, zp)


def _range(scale: np.ndarray, zp: np.ndarray) -> tuple[float, float]:
    return float(scale * (-128 - int(zp))), float(scale * (127 - int(zp)))


def _unify_concat(g: OnnxGraph) -> None:
    for n in [n for n in g.proto.graph.node if n.op_type == "Concat"]:
        qs = [source_q(g, i) for i in n.input]
        qs += [c for c in g.consumers[n.output[0]] if c.op_type == "QuantizeLinear"]
        if any(q is None for q in qs):
            raise EdgetkError(f"Concat {n.name!r} has an input that is not int8-quantized",
                              fix="quantize every Concat input (QDQ) before lowering to TFLite")
        ranges = [_range(*qparams(g, q)) for q in qs]
        scale, zp = int8_params(min(r[0] for r in ranges), max(r[1] for r in ranges))
        for q in {id(q): q for q in qs}.values():
            set_q(g, q, scale, zp)


def _softmax_output(g: OnnxGraph) -> None:
    for n in [n for n in g.proto.graph.node if n.op_type == "Softmax"]:
        for c in list(g.consumers[n.output[0]]):
            if c.op_type == "QuantizeLinear":
                set_q(g, c, np.float32(1 / 256), np.int8(-128))


def _dq_scale(g: OnnxGraph, tensor: str, node: Any) -> np.ndarray:
    dq = source_q(g, tensor) or g.producer.get(tensor)
    if dq is None or dq.op_type not in ("DequantizeLinear", "QuantizeLinear"):
        raise EdgetkError(f"node {node.name!r} ({node.op_type}): input {tensor!r} is not dequantized int8",
                          fix="quantize the model with --quantizer nncf or ort (QDQ format)")
    return qparams(g, dq)[0]


def _quantize_biases(g: OnnxGraph) -> None:
    from onnx import helper

    for n in [n for n in g.proto.graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 2]:
        bias = g.const(n.input[2])
        if bias is None or bias.dtype != np.float32:
            continue
        scale = (_dq_scale(g, n.input[0], n).astype(np.float64) * _dq_scale(g, n.input[1], n)).astype(np.float32)
        scale = np.broadcast_to(scale, bias.shape).astype(np.float32)
        q = np.clip(np.round(bias.astype(np.float64) / scale), -2**31, 2**31 - 1).astype(np.int32)
        base = g.fresh(f"{n.input[2]}_int32")
        g.set_init(base, q)
        g.set_init(f"{base}_scale", scale)
        g.set_init(f"{base}_zp", np.zeros(bias.shape, np.int32))
        dq_out = f"{base}_dq"
        g.proto.graph.node.insert(list(g.proto.graph.node).index(n), helper.make_node(
            "DequantizeLinear", [base, f"{base}_scale", f"{base}_zp"], [dq_out], name=dq_out, axis=0))
        n.input[2] = dq_out
        g.reindex()


def drop_unused_initializers(proto: Any) -> None:
    """Remove initializers no node reads (e.g. float biases replaced by int32 ones)."""
    used = {i for n in proto.graph.node for i in n.input}
    keep = [t for t in proto.graph.initializer if t.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)
