"""A float .tflite → a float ONNX graph (NHWC → NCHW), for the same quantizers and the same bundle writer.

Why this path and not a maintained TFLite quantizer (ai-edge-quantizer): the bundle contract is an int8 ONNX
model, a TFLite model and C that agree bit for bit, with a fidelity report against the float model. A TFLite
quantizer gives a .tflite only: no int8 ONNX to check it against, no dyadic (integer-exact) requantization,
and FULLY_CONNECTED ops that LiteRT's reference kernels round unlike TFLite-Micro (see ARCHITECTURE.md); the
bundle would be a second kind of bundle with its own, weaker, guarantees. Converting our reader's graph
(toolkit.tflite) to ONNX is ~250 lines for the ops small TFLite models use, and from there an imported model is
indistinguishable from a trained one: same NNCF/onnxruntime quantizers, same QDQ normal form, same lowering
(no TRANSPOSE: 4-D tensors become NCHW here and NHWC again in the lowering), same fidelity report.

Weights stored as int8 with float activations (TFLite "hybrid" models, e.g. MLPerf Tiny's KWS float model) are
dequantized to float32; LiteRT runs such ops with dynamically quantized inputs, so the ONNX fp32 graph differs
from its source by that rounding (recorded as `source_vs_onnx_fp32`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)

OPSET = 18
_ACT = {"NONE": None, "RELU": ("Relu", ()), "RELU6": ("Clip", (0.0, 6.0))}


@dataclass
class _T:
    """An ONNX tensor standing for a TFLite tensor."""

    name: str
    shape: tuple[int, ...]        # ONNX shape (NCHW for 4-D)
    chw_flat: tuple[int, int, int] | None = None  # a flattened 4-D tensor in C,H,W order (TFLite's is H,W,C)


class Converter:
    """State of one TFLite → ONNX conversion."""

    def __init__(self, graph: Any, name: str) -> None:
        self.g, self.name = graph, name
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.t: dict[int, _T] = {}
        self.consts: dict[int, np.ndarray] = {}  # constants computed here (DEQUANTIZE of weights)
        self._n = 0

    # ---- helpers ----
    def fresh(self, base: str) -> str:
        """A new tensor name."""
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, value: np.ndarray, base: str) -> str:
        """An initializer; returns its name."""
        from onnx import numpy_helper

        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], out: str | None = None, **kw: Any) -> str:
        """Append a node; returns its output name."""
        from onnx import helper

        out = out or self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **kw))
        return out

    def fail(self, op: Any, why: str) -> EdgetkError:
        """The error for one operator that cannot be converted."""
        return EdgetkError(f"{self.name}: operator #{op.index} {op.op}: {why}",
                           fix="edgetk converts float TFLite models built from: " + ", ".join(sorted(CONVERTERS)))

    def act(self, op: Any, i: int = 0) -> _T:
        """The ONNX tensor behind activation input i."""
        idx = op.inputs[i]
        if idx not in self.t:
            raise self.fail(op, f"input {i} (tensor {idx}) is not a computed activation")
        return self.t[idx]

    def weight(self, op: Any, i: int) -> np.ndarray | None:
        """A constant input as float32 (int8/float16 weights dequantized); None when absent."""
        if i >= len(op.inputs) or op.inputs[i] < 0:
            return None
        if op.inputs[i] in self.consts:
            return self.consts[op.inputs[i]]
        t = self.g.tensor(op.inputs[i])
        if t.data is None:
            raise self.fail(op, f"input {i} ({t.name!r}) must be a constant")
        w = t.data
        if t.dtype in ("int8", "uint8", "int16") and t.quant is not None:
            scale = np.asarray(t.quant.scale, np.float32)
            zp = np.asarray(t.quant.zero_point, np.float32)
            shape = [1] * w.ndim
            if scale.size > 1:
                shape[t.quant.axis] = scale.size
            return ((w.astype(np.float32) - zp.reshape(shape)) * scale.reshape(shape)).astype(np.float32)
        if t.dtype not in ("float32", "float16", "int32"):
            raise self.fail(op, f"constant {t.name!r} has type {t.dtype}")
        return w.astype(np.float32)

    def out(self, op: Any, name: str, chw_flat: tuple[int, int, int] | None = None) -> None:
        """Register the ONNX tensor `name` as the op's output 0 (TFLite shape → ONNX layout)."""
        shape = self.g.tensor(op.outputs[0]).shape
        self.t[op.outputs[0]] = _T(name, to_onnx_shape(shape), chw_flat)

    def fused(self, op: Any, y: str) -> str:
        """Apply the op's fused activation."""
        a = op.options.get("fused_activation_function", "NONE")
        if a not in _ACT:
            raise self.fail(op, f"fused activation {a} is not supported (NONE, RELU, RELU6 are)")
        if _ACT[a] is None:
            return y
        kind, bounds = _ACT[a]
        return self.node(kind, [y, *(self.const(np.float32(b), "clip") for b in bounds)])

    # ---- driver ----
    def run(self) -> Any:
        """The ONNX ModelProto, or one error listing every unsupported operator."""
        from onnx import TensorProto, helper

        g = self.g
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            raise EdgetkError(f"{self.name} has {len(g.inputs)} inputs and {len(g.outputs)} outputs",
                              fix="edgetk imports single-input, single-output models")
        bad = [op for op in g.operators if op.op not in CONVERTERS]
        if bad:
            lines = "; ".join(f"#{op.index} {op.op}" for op in bad)
            raise EdgetkError(f"{self.name}: {len(bad)} operator(s) edgetk cannot convert to its float ONNX form: {lines}",
                              fix="edgetk imports float TFLite models built from: " + ", ".join(sorted(CONVERTERS))
                              + "; an int8 .tflite of the model is wrapped as is (edgetk import MODEL_int8.tflite)")
        tin = g.tensor(g.inputs[0])
        if len(tin.shape) not in (2, 4) or tin.shape[0] != 1:
            raise EdgetkError(f"{self.name}: input shape {list(tin.shape)}; edgetk imports [1, F] or [1, H, W, C] inputs",
                              fix="export the model with a batch-1 2-D or 4-D input")
        self.t[g.inputs[0]] = _T("input", to_onnx_shape(tin.shape))
        for op in g.operators:
            try:
                CONVERTERS[op.op](self, op)
            except EdgetkError:
                raise
            except Exception as e:  # noqa: BLE001 - missing options, odd shapes: name the operator
                raise self.fail(op, f"{type(e).__name__}: {str(e)[:200]}") from None
        y = self.t[g.outputs[0]]
        if y.chw_flat is not None:
            raise EdgetkError(f"{self.name}: the output is a flattened NHWC tensor", fix="end the model with a dense layer")
        self.nodes.append(helper.make_node("Identity", [y.name], ["output"], name="output"))
        graph = helper.make_graph(
            self.nodes, "imported", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(self.t[g.inputs[0]].shape))],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(y.shape))], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgetk import")
        model.ir_version = 8
        return model


def to_onnx_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A TFLite shape in ONNX layout (NHWC → NCHW for 4-D)."""
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else tuple(shape)


def _pads(c: Converter, op: Any, x: _T, k: tuple[int, int], strides: tuple[int, int],
          dil: tuple[int, int] = (1, 1)) -> list[int]:
    """ONNX pads [top, left, bottom, right] of TFLite SAME / VALID padding."""
    if op.options.get("padding", "VALID") == "VALID":
        return [0, 0, 0, 0]
    pads = []
    for size, kk, s, d in zip(x.shape[2:], k, strides, dil):
        out = -(-size // s)
        total = max((out - 1) * s + (kk - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    return [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]


# ---- operator converters ----
def _conv(c: Converter, op: Any) -> None:
    x = c.act(op)
    w = c.weight(op, 1)
    depthwise = op.op == "DEPTHWISE_CONV_2D"
    o = op.options
    strides = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
    dil = (int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1)))
    if depthwise:  # [1, kH, kW, C·m] → [C·m, 1, kH, kW], group C
        wo, group = w.transpose(3, 0, 1, 2), x.shape[1]
    else:          # [O, kH, kW, I] → [O, I, kH, kW]
        wo, group = w.transpose(0, 3, 1, 2), 1
    if not depthwise and wo.shape[1] != x.shape[1]:
        raise c.fail(op, f"weights for {wo.shape[1]} input channels, input has {x.shape[1]}")
    b = c.weight(op, 2)
    b = np.zeros(wo.shape[0], np.float32) if b is None else b
    y = c.node("Conv", [x.name, c.const(wo, "w"), c.const(b, "b")], kernel_shape=list(wo.shape[2:]),
               strides=list(strides), dilations=list(dil), pads=_pads(c, op, x, wo.shape[2:], strides, dil), group=group)
    c.out(op, c.fused(op, y))


def _fully_connected(c: Converter, op: Any) -> None:
    x = c.act(op)
    w = c.weight(op, 1)  # [O, I]
    if op.options.get("keep_num_dims"):
        raise c.fail(op, "keep_num_dims is not supported")
    if len(x.shape) == 4:
        n, ch, h, wd = x.shape
        x = _T(c.node("Flatten", [x.name], axis=1), (n, ch * h * wd), (ch, h, wd) if ch > 1 and h * wd > 1 else None)
    elif len(x.shape) != 2:
        raise c.fail(op, f"input of rank {len(x.shape)} is not supported")
    if x.chw_flat is not None:  # TFLite flattened H,W,C; the ONNX tensor holds C,H,W: permute the columns
        ch, h, wd = x.chw_flat
        w = w.reshape(w.shape[0], h, wd, ch).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
    b = c.weight(op, 2)
    b = np.zeros(w.shape[0], np.float32) if b is None else b
    y = c.node("Gemm", [x.name, c.const(w, "w"), c.const(b, "b")], transB=1)
    c.out(op, c.fused(op, y))


def _pool(c: Converter, op: Any) -> None:
    x = c.act(op)
    o = op.options
    k = (int(o["filter_height"]), int(o["filter_width"]))
    s = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
    kind = "AveragePool" if op.op == "AVERAGE_POOL_2D" else "MaxPool"
    kw = {"count_include_pad": 0} if kind == "AveragePool" else {}
    y = c.node(kind, [x.name], kernel_shape=list(k), strides=list(s), pads=_pads(c, op, x, k, s), **kw)
    c.out(op, c.fused(op, y))


def _same_order(shape: tuple[int, ...]) -> bool:
    """Whether a 4-D ONNX (NCHW) tensor has the same element order as its NHWC twin."""
    return len(shape) != 4 or shape[1] == 1 or shape[2] * shape[3] == 1


def _reshape(c: Converter, op: Any) -> None:
    x = c.act(op)
    out_tfl = c.g.tensor(op.outputs[0]).shape
    out = to_onnx_shape(out_tfl)
    if len(x.shape) == 4 and len(out) == 2 and not _same_order(x.shape):
        y = c.node("Flatten", [x.name], axis=1)
        c.out(op, y, chw_flat=tuple(x.shape[1:]))
        return
    if x.chw_flat is not None or not _same_order(x.shape) or not _same_order(out):
        raise c.fail(op, f"reshape {list(c.g.tensor(op.inputs[0]).shape)} → {list(out_tfl)} reorders NHWC data")
    y = c.node("Reshape", [x.name, c.const(np.asarray(out, np.int64), "shape")])
    c.out(op, y)


def _softmax(c: Converter, op: Any) -> None:
    x = c.act(op)
    if float(op.options.get("beta", 1.0)) != 1.0 or len(x.shape) != 2:
        raise c.fail(op, "only SOFTMAX with beta 1 on a 2-D tensor is supported")
    c.out(op, c.node("Softmax", [x.name], axis=-1))


def _add(c: Converter, op: Any) -> None:
    a, b = c.act(op, 0), c.act(op, 1)
    if a.shape != b.shape or a.chw_flat != b.chw_flat:
        raise c.fail(op, f"broadcasting add {list(a.shape)} + {list(b.shape)} is not supported")
    c.out(op, c.fused(op, c.node("Add", [a.name, b.name])), a.chw_flat)


def _mean(c: Converter, op: Any) -> None:
    x = c.act(op)
    axes = sorted(int(v) % 4 for v in np.atleast_1d(c.weight(op, 1)).astype(int)) if len(x.shape) == 4 else []
    if axes != [1, 2]:
        raise c.fail(op, f"only the spatial mean (axes [1, 2]) of a 4-D tensor is supported, got {axes}")
    keep = int(bool(op.options.get("keep_dims", False)))
    c.out(op, c.node("ReduceMean", [x.name, c.const(np.asarray([2, 3], np.int64), "axes")], keepdims=keep))


def _pad(c: Converter, op: Any) -> None:
    x = c.act(op)
    p = c.weight(op, 1).astype(np.int64)
    if len(x.shape) != 4 or p.shape != (4, 2) or p[0].any() or p[3].any():
        raise c.fail(op, "only spatial zero padding of a 4-D tensor is supported")
    pads = np.asarray([0, 0, p[1, 0], p[2, 0], 0, 0, p[1, 1], p[2, 1]], np.int64)
    c.out(op, c.node("Pad", [x.name, c.const(pads, "pads")], mode="constant"))


def _relu(c: Converter, op: Any) -> None:
    x = c.act(op)
    kind, bounds = _ACT["RELU" if op.op == "RELU" else "RELU6"]
    c.out(op, c.node(kind, [x.name, *(c.const(np.float32(v), "clip") for v in bounds)]), x.chw_flat)


def _concat(c: Converter, op: Any) -> None:
    xs = [c.act(op, i) for i in range(len(op.inputs))]
    rank = len(xs[0].shape)
    axis = int(op.options.get("axis", 0)) % rank
    if any(x.chw_flat is not None for x in xs):
        raise c.fail(op, "concatenating flattened NHWC tensors is not supported")
    onnx_axis = (0, 2, 3, 1)[axis] if rank == 4 else axis
    c.out(op, c.fused(op, c.node("Concat", [x.name for x in xs], axis=onnx_axis)))


def _dequantize(c: Converter, op: Any) -> None:
    """DEQUANTIZE of constant float16/int8 weights (float16 models): a float32 constant for the op reading it."""
    if c.g.tensor(op.inputs[0]).data is None:
        raise c.fail(op, "only DEQUANTIZE of constant weights is supported")
    c.consts[op.outputs[0]] = c.weight(op, 0)


CONVERTERS: dict[str, Callable[[Converter, Any], None]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _pool, "MAX_POOL_2D": _pool, "RESHAPE": _reshape, "SOFTMAX": _softmax, "ADD": _add,
    "MEAN": _mean, "PAD": _pad, "RELU": _relu, "RELU6": _relu, "CONCATENATION": _concat, "DEQUANTIZE": _dequantize,
}


def tflite_to_onnx(graph: Any, name: str) -> Any:
    """The float ONNX ModelProto (NCHW, opset 18, batch 1) equivalent to a float TFLite graph."""
    return Converter(graph, name).run()
