"""Integer-exact requantization: ONNX Runtime, TFLite and TFLite-Micro compute the same int8 values.

An int8 conv outputs round(acc × M) + z with M = s_in·s_w/s_out. ONNX Runtime rounds that product once;
TFLite's kernels round twice (a Q31 multiply, then a rounding shift), so a value near a rounding boundary
can land 1 LSB apart, and those 1-LSB differences compound over the layers. When M is a power of two,
2^-k, the requantization is a pure shift and both roundings agree, except how ties break. So:

1. per-channel weight scales snap up to (s_out/s_in)·2^-k, k per channel (at most 1 bit of weight
   resolution), and weights and biases are requantized from the float model;
2. the tensors an Add joins share one scale, so the Add is an exact integer sum;
3. a spatial mean over an odd number n of values keeps its input's scale and zero point (then no mean
   is a tie, and TFLite's AVERAGE_POOL_2D and ONNX Runtime round alike); over an even n it becomes a
   depthwise convolution with one constant int8 weight w, whose output scale s_in·2^k/(n·w) makes it a
   shift too (it stores n·C int8 weights); TFLite's integer MEAN divides by n with double rounding.
   This runs after pass 2, which may change the scale of the mean's input (a global mean right after a
   residual Add); a mean whose output feeds an Add keeps its scales (counted in inexact_means);
4. ties are pinned to "away from zero" (TFLite's rule): the ONNX file stores M a hair above 2^-k,
   by 2^-(k+9), and the TFLite lowering stores it a few float32 ulps below (`tflite_weight_scales`), which
   makes TFLite's first rounding exact. Both hairs are far below one LSB for any in-range output.
"""
from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np

from toolkit.quant.graph import OnnxGraph, attrs, qparams

log = logging.getLogger(__name__)

MARKER = "edgetk.requantization"   # metadata_props key; value "dyadic" once make_dyadic ran
INFO = "edgetk.requantization.info"     # metadata_props key: what make_dyadic did (JSON)
MEAN_DOC = "edgetk: exact spatial mean"  # doc_string of the depthwise convs that replace an even-sized mean
MAX_SHIFT = 12          # beyond 2^-12 the hair no longer stands clear of float32 rounding (2^-24 per op)
_RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def make_dyadic(proto: Any, fp32: Any | None = None) -> dict[str, Any]:
    """Apply passes 1-3 in place on a normalized QDQ model; returns what was done (for the manifest: what the
    passes did, not a measurement; the bundle's fidelity report measures whether the runtimes then agree)."""
    from toolkit.quant.qdq import drop_unused_initializers

    g = OnnxGraph(proto)
    adds, shared = _unify_add_scales(g)   # first: the means below read their input's final scale
    means, inexact_means = _exact_means(g, shared)
    channels, inexact = _snap_weight_scales(g, _float_weights(fp32))
    drop_unused_initializers(proto)
    info = {"exact_means": means, "inexact_means": inexact_means, "add_groups": adds, "dyadic_channels": channels,
            "inexact_channels": inexact}
    for p in [p for p in proto.metadata_props if p.key in (MARKER, INFO)]:
        proto.metadata_props.remove(p)
    proto.metadata_props.add(key=MARKER, value="dyadic")
    proto.metadata_props.add(key=INFO, value=json.dumps(info))
    log.info("integer-exact requantization: %s", info)
    return info


INFO_COUNTS = ("exact_means", "add_groups", "dyadic_channels", "inexact_channels")


def requantization_info(proto: Any) -> dict[str, Any] | None:
    """What make_dyadic recorded in a model (None for a model with free scales); a corrupted record is an
    EdgetkError naming the metadata key."""
    from toolkit.errors import EdgetkError

    for p in proto.metadata_props:
        if p.key == INFO:
            try:
                info = json.loads(p.value)
            except ValueError as e:
                info, why = None, f"not JSON ({e})"
            else:
                why = "not an object with non-negative integer " + ", ".join(INFO_COUNTS)
            if not isinstance(info, dict) or not all(isinstance(info.get(k), int) and not isinstance(info.get(k), bool)
                                                     and info[k] >= 0 for k in INFO_COUNTS):
                raise EdgetkError(f"the model's metadata {INFO} is corrupted: {why}: {p.value[:80]!r}",
                                  fix="re-export the model with edgetk export (or drop that metadata entry)")
            return info
    return None


def is_dyadic(proto: Any) -> bool:
    """Whether make_dyadic prepared this model (the TFLite lowering then pins its multipliers)."""
    return any(p.key == MARKER and p.value == "dyadic" for p in proto.metadata_props)


def output_q(g: OnnxGraph, node: Any) -> Any | None:
    """The QuantizeLinear that quantizes a node's output (through a fused Relu/Clip or a reshape)."""
    y = node.output[0]
    cons = g.consumers[y]
    if len(cons) == 1 and cons[0].op_type in ("Relu", "Clip"):
        y = cons[0].output[0]
        cons = g.consumers[y]
    qs = [c for c in cons if c.op_type == "QuantizeLinear"]
    if not qs and len(cons) == 1 and cons[0].op_type in _RESHAPES:
        qs = [c for c in g.consumers[cons[0].output[0]] if c.op_type == "QuantizeLinear"]
    return qs[0] if len(qs) == 1 else None


def _params_for(scale: float, lo: float, hi: float) -> tuple[np.float32, np.int8]:
    """The zero point that places [lo, hi] in int8 at a given scale."""
    zp = int(np.clip(np.round(-128 - min(lo, 0.0) / scale), -128, 127))
    return np.float32(scale), np.int8(zp)


def _range(g: OnnxGraph, q: Any) -> tuple[float, float]:
    s, z = qparams(g, q)
    return float(s) * (-128 - int(z)), float(s) * (127 - int(z))


# ---- pass 3: spatial means (odd: the input's params; even: depthwise convolutions) ----
def _mean_kernel(n: int, ratio: float) -> tuple[int, int]:
    """(w, k) with 2^k/(n·w) the smallest output/input scale ratio ≥ `ratio` (w an int8 weight)."""
    best = None
    for w in range(1, 128):
        k = max(0, math.ceil(math.log2(ratio * n * w)))
        r = 2.0 ** k / (n * w)
        if best is None or r < best[0]:
            best = (r, w, k)
    return best[1], best[2]


def _spatial_means(g: OnnxGraph) -> list[Any]:
    out = []
    for n in g.proto.graph.node:
        if n.op_type == "GlobalAveragePool":
            out.append(n)
        elif n.op_type == "ReduceMean" and attrs(n).get("keepdims", 1):
            axes = attrs(n).get("axes") or (list(g.const(n.input[1])) if len(n.input) > 1 else [])
            if sorted(int(a) % 4 for a in axes) == [2, 3]:
                out.append(n)
    return out


def _exact_means(g: OnnxGraph, shared: set[str]) -> tuple[int, int]:
    """Make each spatial mean of a 4-D int8 tensor exact: odd sizes share the input's params (an average pool
    without ties), even sizes become a depthwise conv whose requantization is a shift. Runs after the Add pass
    (an Add may change the scale of the mean's input); a mean whose output scale an Add shares (`shared`) keeps
    its scales. Returns (exact, inexact) counts."""
    import onnx
    from onnx import helper

    from toolkit.quant.qdq import set_q, source_q

    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in onnx.shape_inference.infer_shapes(g.proto).graph.value_info}
    done = skipped = 0
    for node in _spatial_means(g):
        src, q = source_q(g, node.input[0]), output_q(g, node)
        shape = shapes.get(node.input[0])
        if src is None or q is None or not shape or len(shape) != 4 or 0 in shape:
            log.info("mean %s stays a MEAN (not exact: no int8 input/output or unknown shape)", node.name)
            skipped += 1
            continue
        if q.name in shared:
            log.warning("mean %s stays a MEAN (not exact: an Add shares its output's scale)", node.name)
            skipped += 1
            continue
        c, n = shape[1], shape[2] * shape[3]
        if n % 2:
            set_q(g, q, *qparams(g, src))
            done += 1
            continue
        s_in = float(qparams(g, src)[0])
        w, k = _mean_kernel(n, float(qparams(g, q)[0]) / s_in)
        s_out = s_in * 2.0 ** k / (n * w)
        set_q(g, q, *_params_for(s_out, *_range(g, q)))
        base = g.fresh(f"{node.name}_dw")
        g.set_init(f"{base}_w", np.full((c, 1, shape[2], shape[3]), w, np.int8))
        g.set_init(f"{base}_w_scale", np.full(c, 1.0 / (n * w), np.float32))
        g.set_init(f"{base}_w_zp", np.zeros(c, np.int8))
        nodes = list(g.proto.graph.node)
        at = nodes.index(node)
        dq = helper.make_node("DequantizeLinear", [f"{base}_w", f"{base}_w_scale", f"{base}_w_zp"], [f"{base}_wdq"],
                              name=f"{base}_wdq", axis=0)
        conv = helper.make_node("Conv", [node.input[0], f"{base}_wdq"], [node.output[0]], name=base, group=c,
                                kernel_shape=shape[2:], doc_string=MEAN_DOC)
        g.proto.graph.node.remove(node)
        g.proto.graph.node.insert(at, conv)
        g.proto.graph.node.insert(at, dq)
        g.reindex()
        done += 1
    return done, skipped


# ---- pass 2: one scale across each Add ----
def _unify_add_scales(g: OnnxGraph) -> tuple[int, set[str]]:
    """Give the QuantizeLinears that an Add joins (its inputs and output) one scale; returns the group count and
    the names of those QuantizeLinears."""
    from toolkit.quant.qdq import set_q, source_q

    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    qnodes = {}
    for n in [n for n in g.proto.graph.node if n.op_type == "Add"]:
        qs = [source_q(g, i) for i in n.input] + [output_q(g, n)]
        if any(q is None for q in qs):
            log.info("Add %s keeps its scales (an input or its output is not int8)", n.name)
            continue
        for q in qs:
            qnodes[q.name] = q
            parent[find(q.name)] = find(qs[0].name)
    groups: dict[str, list[Any]] = {}
    for name, q in qnodes.items():
        groups.setdefault(find(name), []).append(q)
    for qs in groups.values():
        scale = max(float(qparams(g, q)[0]) for q in qs)
        for q in qs:
            set_q(g, q, *_params_for(scale, *_range(g, q)))
    return len(groups), set(qnodes)


# ---- pass 1: dyadic per-channel weight scales ----
def _float_weights(fp32: Any | None) -> dict[str, np.ndarray]:
    """Float weights of the fp32 model by the name of the node that reads them."""
    if fp32 is None:
        return {}
    f = OnnxGraph(fp32)
    out = {}
    for n in fp32.graph.node:
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 1 and f.const(n.input[1]) is not None:
            out[n.name] = f.const(n.input[1]).astype(np.float64)
    return out


def _hair(k: int) -> float:
    """Relative excess of the ONNX multiplier over 2^-k: ≤ half the distance (2^-k, or 1/2 LSB for k ≤ 0) from any
    non-tie in-range output (|value| ≤ 256 LSB) to a rounding boundary."""
    return 2.0 ** -(max(k, 1) + 9)


def onnx_weight_scale(s_in: float, s_out: float, k: int) -> np.float32:
    """The float32 weight scale whose requantization multiplier is 2^-k plus a hair (ties away from zero)."""
    target = 2.0 ** -k
    s = np.float32(target * (1 + _hair(k)) * s_out / s_in)
    excess = float(s_in) * float(s) / float(s_out) / target - 1
    if k > MAX_SHIFT or not 2.0 ** -22 < excess < 2 * _hair(k):
        return np.float32(target * s_out / s_in)
    return s


def _snap_weight_scales(g: OnnxGraph, floats: dict[str, np.ndarray]) -> tuple[int, int]:
    """Requantize every per-channel int8 Conv/Gemm weight to dyadic multipliers; returns (channels, inexact)."""
    from toolkit.quant.qdq import source_q

    total = inexact = 0
    for node in [n for n in g.proto.graph.node if n.op_type in ("Conv", "Gemm")]:
        src, q, wdq = source_q(g, node.input[0]), output_q(g, node), g.producer.get(node.input[1])
        if src is None or q is None or wdq is None or wdq.op_type != "DequantizeLinear":
            continue
        w_int, (s_w, _zp) = g.const(wdq.input[0]), qparams(g, wdq)
        axis = int(attrs(wdq).get("axis", 1)) % max(1, np.ndim(w_int))
        if w_int is None or s_w.size != w_int.shape[axis]:
            log.info("%s: per-tensor weights keep their scale (not exact)", node.name)
            continue
        s_in, s_out = float(qparams(g, src)[0]), float(qparams(g, q)[0])
        shape = [1] * w_int.ndim
        shape[axis] = -1
        wf = floats.get(node.name)
        if wf is None or wf.shape != w_int.shape:
            wf = w_int.astype(np.float64) * s_w.reshape(shape)
        wmax = np.abs(np.moveaxis(wf, axis, 0).reshape(w_int.shape[axis], -1)).max(axis=1)
        old_m = s_in * s_w.astype(np.float64) / s_out
        m = np.where(wmax > 0, s_in * wmax / 127 / s_out, old_m)
        k = np.floor(-np.log2(m)).astype(int)
        exact = 2.0 ** -k * s_out / s_in
        w_new = np.clip(np.round(wf / exact.reshape(shape)), -127, 127).astype(np.int8)
        stored = np.array([onnx_weight_scale(s_in, s_out, int(kk)) for kk in k], np.float32)
        g.set_init(wdq.input[0], w_new)
        g.set_init(wdq.input[1], stored)
        if len(node.input) > 2 and node.input[2]:
            _requantize_bias(g, node, s_in * exact, np.float32(s_in) * stored)
        total += k.size
        inexact += int((k > MAX_SHIFT).sum())
    return total, inexact


def _requantize_bias(g: OnnxGraph, node: Any, acc_scale: np.ndarray, stored_scale: np.ndarray) -> None:
    bdq = g.producer.get(node.input[2])
    b = None if bdq is None or bdq.op_type != "DequantizeLinear" else g.const(bdq.input[0])
    if b is None or b.dtype != np.int32:
        return
    b_float = b.astype(np.float64) * np.broadcast_to(qparams(g, bdq)[0], b.shape)
    b_new = np.clip(np.round(b_float / acc_scale), -2**31, 2**31 - 1).astype(np.int32)
    g.set_init(bdq.input[0], b_new)
    g.set_init(bdq.input[1], stored_scale.astype(np.float32))
    if len(bdq.input) > 2 and bdq.input[2]:
        g.set_init(bdq.input[2], np.zeros(b.shape, np.int32))


def tflite_weight_scales(s_in: float, s_w: np.ndarray, s_out: float) -> np.ndarray:
    """Weight scales for the TFLite file: a dyadic-pinned ONNX multiplier (2^-k plus a hair) becomes 2^-k
    minus a few float32 ulps, so TFLite's Q31 multiply returns the accumulator unchanged and only its
    rounding shift (ties away from zero) rounds. Other channels are returned unchanged."""
    out = np.array(s_w, np.float32, copy=True).reshape(-1)
    for i, s in enumerate(out):
        m = float(s_in) * float(s) / float(s_out)
        if m <= 0:
            continue
        k = round(-math.log2(m))
        if k > MAX_SHIFT or not 0 < m * 2.0 ** k - 1 < 4 * _hair(k):
            continue
        t = np.float32(2.0 ** -k * float(s_out) / float(s_in))
        while float(s_in) * float(t) / float(s_out) * 2.0 ** k >= 1 - 2.0 ** -31:
            t = np.nextafter(t, np.float32(0), dtype=np.float32)
        out[i] = t
    return out.reshape(np.shape(s_w))
