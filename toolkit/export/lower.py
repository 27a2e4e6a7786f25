"""Lower a normalized QDQ ONNX graph to a full-int8 TFLite model: NHWC, weights transposed here,
no TRANSPOSE ops. Each ONNX op type has one lowering function in LOWERINGS."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.export.tflite_writer import TFLiteBuilder
from toolkit.quant.dyadic import is_dyadic, tflite_weight_scales
from toolkit.quant.graph import OnnxGraph, attrs, qparams

log = logging.getLogger(__name__)

NCHW_TO_NHWC = (0, 2, 3, 1)
_RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
_SKIP = frozenset({"QuantizeLinear", "DequantizeLinear", "Constant"})


@dataclass(frozen=True)
class Act:
    """An int8 TFLite tensor standing for an ONNX float tensor (its exact dequantization)."""

    index: int
    onnx_shape: tuple[int, ...]
    scale: float
    zero_point: int
    flat_from: tuple[int, int, int] | None = None  # (C, H, W) of a flattened NHWC tensor with H*W > 1
    as_4d: bool = False  # a 2-D ONNX tensor [N, F] held as [N, 1, 1, F] (output of a Linear lowered to CONV_2D)

    @property
    def tfl_shape(self) -> tuple[int, ...]:
        """Shape in TFLite layout (NHWC for 4-D)."""
        s = self.onnx_shape
        if self.as_4d:
            return (s[0], 1, 1, s[1])
        return tuple(s[i] for i in NCHW_TO_NHWC) if len(s) == 4 else s

    @property
    def same_order(self) -> bool:
        """Whether the NHWC element order equals the ONNX NCHW order (C == 1 or H*W == 1)."""
        s = self.onnx_shape
        return self.flat_from is None and (len(s) != 4 or s[1] == 1 or s[2] * s[3] == 1)


class Lowering:
    """State of one QDQ → TFLite lowering."""

    def __init__(self, proto: Any) -> None:
        import onnx

        self.proto = onnx.shape_inference.infer_shapes(proto)
        self.g = OnnxGraph(self.proto)
        self.b = TFLiteBuilder()
        self.act: dict[str, Act] = {}
        self.fused: set[str] = set()
        self.macs = 0
        self.params = 0
        self.shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
                       for v in [*self.proto.graph.value_info, *self.proto.graph.input, *self.proto.graph.output]}
        self.dyadic = is_dyadic(proto)

    # ---- helpers used by the op lowerings ----
    def fail(self, node: Any, why: str) -> EdgetkError:
        """The one error for a node that cannot be lowered."""
        return EdgetkError(f"cannot lower ONNX node {node.name!r} (op type {node.op_type}) to TFLite int8: {why}",
                           fix=f"use only supported ops: {', '.join(sorted(LOWERINGS))}")

    def inp(self, node: Any, i: int = 0) -> Act:
        """The int8 tensor behind input i of a node."""
        a = self.act.get(node.input[i])
        if a is None:
            raise self.fail(node, f"input {node.input[i]!r} is not an int8-quantized activation")
        return a

    def weight(self, node: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(int values, scale) of a DequantizeLinear'd constant input."""
        dq = self.g.producer.get(node.input[i])
        q = None if dq is None or dq.op_type != "DequantizeLinear" else self.g.const(dq.input[0])
        if q is None:
            raise self.fail(node, f"input {node.input[i]!r} is not a quantized constant")
        scale, zp = qparams(self.g, dq)
        if np.any(zp != 0):
            raise self.fail(node, "weights and biases must be symmetric (zero point 0)")
        return q, scale

    def weight_scales(self, node: Any, x: Act, w_scale: np.ndarray) -> np.ndarray:
        """The TFLite file's weight scales: the ONNX file's, pinned just below 2^-k in a dyadic model."""
        params = self.output(node)[2] if self.dyadic else None
        return w_scale if params is None else tflite_weight_scales(x.scale, w_scale, params[0])

    def output(self, node: Any, fusable: bool = True) -> tuple[str, str, tuple[float, int] | None]:
        """(final float name, fused activation, int8 params) following the node through Relu/Clip into Q."""
        y, act = node.output[0], "NONE"
        cons = self.g.consumers[y]
        if fusable and len(cons) == 1 and cons[0].op_type in ("Relu", "Clip"):
            act = _activation(self, cons[0])
            self.fused.add(cons[0].name)
            y = cons[0].output[0]
        qs = [c for c in self.g.consumers[y] if c.op_type == "QuantizeLinear"]
        nxt = self.g.consumers[y]
        if not qs and len(nxt) == 1 and nxt[0].op_type in _RESHAPES:  # onnxruntime quantizes after the reshape
            qs = [c for c in self.g.consumers[nxt[0].output[0]] if c.op_type == "QuantizeLinear"]
        params = {(float(qparams(self.g, q)[0]), int(qparams(self.g, q)[1])) for q in qs}
        if len(params) > 1:
            raise self.fail(node, f"output {y!r} is quantized with {len(params)} different scales")
        return y, act, params.pop() if params else None

    def new_act(self, name: str, onnx_shape: tuple[int, ...], scale: float, zp: int,
                flat_from: tuple[int, int, int] | None = None, as_4d: bool = False) -> Act:
        """Create an int8 TFLite tensor for ONNX tensor `name` and register it."""
        a = Act(-1, tuple(onnx_shape), scale, zp, flat_from, as_4d)
        idx = self.b.tensor(name, a.tfl_shape, np.int8, scale=scale, zero_point=zp)
        a = Act(idx, a.onnx_shape, scale, zp, flat_from, as_4d)
        self.act[name] = a
        return a

    def relayout(self, x: Act, as_4d: bool) -> Act:
        """The same 2-D tensor held as [N, F] or [N, 1, 1, F] (a RESHAPE when it changes)."""
        if x.as_4d == as_4d:
            return x
        name = f"{self.b.tensors[x.index].name}_{'4d' if as_4d else '2d'}"
        key = f"\0{name}"
        if key not in self.act:
            y = Act(-1, x.onnx_shape, x.scale, x.zero_point, x.flat_from, as_4d)
            idx = self.b.tensor(name, y.tfl_shape, np.int8, scale=x.scale, zero_point=x.zero_point)
            self.b.op("RESHAPE", [x.index, self.const_i32(f"{name}_shape", y.tfl_shape)], [idx],
                      self.b.options("ReshapeOptions", newShape=list(y.tfl_shape)), "ReshapeOptions")
            self.act[key] = Act(idx, x.onnx_shape, x.scale, x.zero_point, x.flat_from, as_4d)
        return self.act[key]

    def result(self, node: Any, fusable: bool = True, same_as: Act | None = None,
               as_4d: bool = False) -> tuple[Act, str]:
        """The output Act of a node (quantized by its Q, or sharing `same_as`'s params) and its activation."""
        y, act, params = self.output(node, fusable)
        if params is None and same_as is None:
            raise self.fail(node, f"output {y!r} has no QuantizeLinear (the graph is not fully int8)")
        scale, zp = params if params is not None else (same_as.scale, same_as.zero_point)
        if same_as is not None and (not math.isclose(scale, same_as.scale, rel_tol=1e-6) or zp != same_as.zero_point):
            raise self.fail(node, "TFLite needs the same scale and zero point on input and output")
        return self.new_act(y, self.shapes[node.output[0]], scale, zp, as_4d=as_4d), act

    def const_i32(self, name: str, values: Any) -> int:
        """An int32 constant tensor (shapes, axes, paddings)."""
        v = np.asarray(values, np.int32)
        return self.b.tensor(name, v.shape, np.int32, data=v)

    # ---- driver ----
    def run(self) -> bytes:
        """Lower every node and pack the flatbuffer."""
        g = self.g
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            raise EdgetkError(f"the model has {len(g.inputs)} inputs and {len(g.outputs)} outputs",
                              fix="export a model with exactly one input and one output")
        model_in = self._graph_input(g.inputs[0])
        for node in self.proto.graph.node:
            if node.op_type == "DequantizeLinear" and node.input[0] in self.act:
                self.act[node.output[0]] = self.act[node.input[0]]
            elif node.op_type == "QuantizeLinear" and node.input[0] in self.act:
                self.act[node.output[0]] = self.act[node.input[0]]
            elif node.op_type in _SKIP or node.name in self.fused:
                continue
            elif node.op_type not in LOWERINGS:
                raise self.fail(node, "unsupported op type")
            else:
                LOWERINGS[node.op_type](self, node)
        out = self.act.get(g.outputs[0])
        out = out if out is None or len(out.onnx_shape) != 2 else self.relayout(out, False)
        if out is None or out.flat_from is not None:
            raise EdgetkError(f"graph output {g.outputs[0]!r} is not an int8 tensor in a TFLite layout",
                              fix="end the model with a Linear or Conv layer")
        self.model_in, self.model_out = model_in, out
        return self.b.finish([model_in.index], [out.index])

    def _graph_input(self, name: str) -> Act:
        qs = [c for c in self.g.consumers[name] if c.op_type == "QuantizeLinear"]
        if len(qs) != 1 or len(self.g.consumers[name]) != 1:
            raise EdgetkError(f"model input {name!r} must feed exactly one QuantizeLinear",
                              fix="quantize the model input (NNCF and onnxruntime both do)")
        scale, zp = qparams(self.g, qs[0])
        a = self.new_act(qs[0].output[0], self.shapes[name], float(scale), int(zp))
        self.b.tensors[a.index].name = name
        return a


@dataclass(frozen=True)
class Lowered:
    """A lowered model: flatbuffer bytes, op counts, parameters (weights + biases) and MACs per inference."""

    tflite: bytes
    ops: dict[str, int]
    params: int
    macs: int
    input: Act
    output: Act
    tensors: dict[str, Act]  # ONNX float tensor name → the int8 TFLite tensor that carries it


def lower_qdq(proto: Any) -> Lowered:
    """Lower a normalized QDQ ONNX model (see toolkit.quant.qdq) to TFLite full int8."""
    from collections import Counter

    lw = Lowering(proto)
    data = lw.run()
    names = {i: name for name, i in lw.b.opcodes.items()}
    ops = Counter(names[o.opcodeIndex] for o in lw.b.operators)
    tensors = {k: v for k, v in lw.act.items() if not k.startswith("\0")}
    return Lowered(data, dict(sorted(ops.items())), lw.params, lw.macs, lw.model_in, lw.model_out, tensors)


# ---- activations and padding ----
def _activation(lw: Lowering, node: Any) -> str:
    if node.op_type == "Relu":
        return "RELU"
    lo = lw.g.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    hi = lw.g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if lo is not None and float(lo) == 0.0 and hi is not None and float(hi) == 6.0:
        return "RELU6"
    if lo is not None and float(lo) == 0.0 and hi is None:
        return "RELU"
    raise lw.fail(node, f"only Clip(0, 6) (ReLU6) and Clip(0) (ReLU) are supported, got ({lo}, {hi})")


def _act_code(lw: Lowering, name: str) -> int:
    return getattr(lw.b.s.ActivationFunctionType, name)


def _same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _padding(lw: Lowering, node: Any, x: Act, kernel: tuple[int, int], strides: tuple[int, int],
             dil: tuple[int, int] = (1, 1), *, pad_ok: bool = True, same_ok: bool = True) -> tuple[Act, int]:
    """(input, Padding) realizing the ONNX pads: VALID, SAME, or an explicit PAD op then VALID."""
    a = attrs(node)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise lw.fail(node, "auto_pad is not supported; export with explicit pads")
    pads = list(a.get("pads", [0, 0, 0, 0]))  # [top, left, bottom, right]
    P = lw.b.s.Padding
    if not any(pads):
        return x, P.VALID
    h, w = x.onnx_shape[2], x.onnx_shape[3]
    (t, bo), (le, r) = _same_pads(h, kernel[0], strides[0], dil[0]), _same_pads(w, kernel[1], strides[1], dil[1])
    if same_ok and pads == [t, le, bo, r]:
        return x, P.SAME
    if not pad_ok:
        raise lw.fail(node, f"pads {pads} are neither VALID nor TFLite SAME {[t, le, bo, r]}")
    return _pad_op(lw, f"{node.name}_pad", x, [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]]), P.VALID


def _pad_op(lw: Lowering, name: str, x: Act, nhwc_pads: list[list[int]]) -> Act:
    n, c, h, w = x.onnx_shape
    shape = (n, c, h + nhwc_pads[1][0] + nhwc_pads[1][1], w + nhwc_pads[2][0] + nhwc_pads[2][1])
    y = lw.new_act(name, shape, x.scale, x.zero_point)
    lw.b.op("PAD", [x.index, lw.const_i32(f"{name}_paddings", nhwc_pads)], [y.index],
            lw.b.options("PadOptions"), "PadOptions")
    return y


# ---- op lowerings ----
def _conv(lw: Lowering, node: Any) -> None:
    x = lw.inp(node)
    w, w_scale = lw.weight(node, 1)  # [O, I/g, kH, kW]
    a = attrs(node)
    group, o = int(a.get("group", 1)), w.shape[0]
    strides, dil = tuple(a.get("strides", [1, 1])), tuple(a.get("dilations", [1, 1]))
    if len(w.shape) != 4:
        raise lw.fail(node, "only 2-D convolutions (1-D as kernel (1, k)) are supported")
    x, padding = _padding(lw, node, x, w.shape[2:], strides, dil)
    w_scale = lw.weight_scales(node, x, w_scale)
    bias = _bias(lw, node, x, w_scale, o)
    y, act = lw.result(node)
    lw.params += w.size + o
    lw.macs += int(np.prod(y.onnx_shape[1:])) * int(np.prod(w.shape[1:]))
    common = dict(padding=padding, strideH=strides[0], strideW=strides[1], dilationHFactor=dil[0],
                  dilationWFactor=dil[1], fusedActivationFunction=_act_code(lw, act))
    if group == 1:
        wt = lw.b.tensor(f"{node.name}_w", w.transpose(0, 2, 3, 1).shape, np.int8, data=w.transpose(0, 2, 3, 1),
                         scale=w_scale, zero_point=np.zeros_like(w_scale, np.int64), quantized_dimension=0)
        lw.b.op("CONV_2D", [x.index, wt, bias], [y.index], lw.b.options("Conv2DOptions", **common), "Conv2DOptions")
    elif group == x.onnx_shape[1] and o % group == 0:
        wd = w.transpose(1, 2, 3, 0)  # [1, kH, kW, O]
        wt = lw.b.tensor(f"{node.name}_w", wd.shape, np.int8, data=wd, scale=w_scale,
                         zero_point=np.zeros_like(w_scale, np.int64), quantized_dimension=3)
        opts = lw.b.options("DepthwiseConv2DOptions", depthMultiplier=o // group, **common)
        lw.b.op("DEPTHWISE_CONV_2D", [x.index, wt, bias], [y.index], opts, "DepthwiseConv2DOptions")
    else:
        raise lw.fail(node, f"grouped convolution (group={group}) that is not depthwise")


def _bias(lw: Lowering, node: Any, x: Act, w_scale: np.ndarray, n_out: int) -> int:
    scale = np.broadcast_to(np.float32(x.scale) * w_scale.astype(np.float32), (n_out,)).astype(np.float32)
    if len(node.input) > 2 and node.input[2]:
        b, b_scale = lw.weight(node, 2)
        if b.dtype != np.int32:
            raise lw.fail(node, "bias must be int32 (normalize the QDQ graph first)")
        if not lw.dyadic:  # a dyadic model's TFLite weight scales are pinned (see weight_scales)
            scale = np.broadcast_to(b_scale, (n_out,)).astype(np.float32)
    else:
        b = np.zeros(n_out, np.int32)
    if np.atleast_1d(w_scale).size == 1:  # per-tensor weights: TFLite checks the bias's single scale
        scale = scale[:1]
    return lw.b.tensor(f"{node.name}_bias", (n_out,), np.int32, data=np.broadcast_to(b, (n_out,)),
                       scale=scale, zero_point=np.zeros(scale.size, np.int64), quantized_dimension=0)


def _gemm(lw: Lowering, node: Any) -> None:
    """Linear → CONV_2D 1×1 on [N, 1, 1, F] (LiteRT's FULLY_CONNECTED rounds unlike TFLite-Micro's)."""
    x = lw.inp(node)
    a = attrs(node)
    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or len(x.onnx_shape) != 2:
        raise lw.fail(node, "only Gemm with transA=0, alpha=beta=1 on a 2-D input (a Linear layer) is supported")
    w, w_scale = lw.weight(node, 1)
    if not a.get("transB", 0):
        w = w.T
    if x.flat_from is not None:  # ONNX flattened C,H,W; TFLite flattened H,W,C: permute the columns
        c, h, wd = x.flat_from
        w = w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
    x = lw.relayout(x, True)
    w_scale = lw.weight_scales(node, x, w_scale)
    bias = _bias(lw, node, x, w_scale, w.shape[0])
    y, act = lw.result(node, as_4d=True)
    lw.params += w.size + w.shape[0]
    lw.macs += w.size
    w4 = w.reshape(w.shape[0], 1, 1, w.shape[1])
    wt = lw.b.tensor(f"{node.name}_w", w4.shape, np.int8, data=w4, scale=w_scale,
                     zero_point=np.zeros_like(np.atleast_1d(w_scale), np.int64), quantized_dimension=0)
    opts = lw.b.options("Conv2DOptions", padding=lw.b.s.Padding.VALID, strideH=1, strideW=1, dilationHFactor=1,
                        dilationWFactor=1, fusedActivationFunction=_act_code(lw, act))
    lw.b.op("CONV_2D", [x.index, wt, bias], [y.index], opts, "Conv2DOptions")


def _add(lw: Lowering, node: Any) -> None:
    x1, x2 = lw.inp(node, 0), lw.inp(node, 1)
    if x1.as_4d != x2.as_4d:
        x1, x2 = lw.relayout(x1, False), lw.relayout(x2, False)
    if x1.onnx_shape != x2.onnx_shape or x1.flat_from != x2.flat_from:
        raise lw.fail(node, f"broadcasting add {x1.onnx_shape} + {x2.onnx_shape} is not supported")
    y, act = lw.result(node)
    lw.b.op("ADD", [x1.index, x2.index], [y.index],
            lw.b.options("AddOptions", fusedActivationFunction=_act_code(lw, act)), "AddOptions")


def _pool(lw: Lowering, node: Any) -> None:
    x = lw.inp(node)
    a = attrs(node)
    k, strides = tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1]))
    if len(k) != 2 or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise lw.fail(node, "only 2-D pooling without ceil_mode or dilation is supported")
    is_avg = node.op_type == "AveragePool"
    include_pad = is_avg and a.get("count_include_pad", 0)
    x, padding = _padding(lw, node, x, k, strides, pad_ok=bool(include_pad), same_ok=not include_pad)
    y, act = lw.result(node, same_as=x)
    opts = lw.b.options("Pool2DOptions", padding=padding, strideH=strides[0], strideW=strides[1],
                        filterHeight=k[0], filterWidth=k[1], fusedActivationFunction=_act_code(lw, act))
    lw.b.op("AVERAGE_POOL_2D" if is_avg else "MAX_POOL_2D", [x.index], [y.index], opts, "Pool2DOptions")


def _mean(lw: Lowering, node: Any) -> None:
    x = lw.inp(node)
    a = attrs(node)
    if node.op_type == "GlobalAveragePool":
        axes, keep = [2, 3], 1
    else:
        axes = a.get("axes") or (list(lw.g.need_const(node.input[1], node)) if len(node.input) > 1 else [])
        keep = a.get("keepdims", 1)
    axes = sorted(int(v) % len(x.onnx_shape) for v in axes)
    if len(x.onnx_shape) != 4 or axes != [2, 3]:
        raise lw.fail(node, f"only the spatial mean of a 4-D tensor is supported (axes {axes})")
    y_name, act, params = lw.output(node, fusable=False)
    scale, zp = params if params is not None else (x.scale, x.zero_point)
    y = lw.new_act(y_name, lw.shapes[node.output[0]], scale, zp)
    if lw.dyadic and keep and (scale, zp) == (x.scale, x.zero_point):  # an odd-sized mean made exact (dyadic.py)
        h, w = x.onnx_shape[2:]
        opts = lw.b.options("Pool2DOptions", padding=lw.b.s.Padding.VALID, strideH=1, strideW=1, filterHeight=h,
                            filterWidth=w, fusedActivationFunction=lw.b.s.ActivationFunctionType.NONE)
        lw.b.op("AVERAGE_POOL_2D", [x.index], [y.index], opts, "Pool2DOptions")
        return
    lw.b.op("MEAN", [x.index, lw.const_i32(f"{node.name}_axes", [1, 2])], [y.index],
            lw.b.options("ReducerOptions", keepDims=bool(keep)), "ReducerOptions")


def _reshape(lw: Lowering, node: Any) -> None:
    x = lw.inp(node)
    out_shape = lw.shapes.get(node.output[0], ())
    if not out_shape or 0 in out_shape:
        raise lw.fail(node, "output shape is not static")
    flat_from = None
    if not x.same_order:
        if len(out_shape) != 2 or x.flat_from is not None or len(x.onnx_shape) != 4:
            raise lw.fail(node, f"reshape {x.onnx_shape} → {out_shape} would need a TRANSPOSE in NHWC")
        flat_from = tuple(x.onnx_shape[1:])
    elif len(out_shape) == 4 and not (out_shape[1] == 1 or out_shape[2] * out_shape[3] == 1):
        raise lw.fail(node, f"reshape {x.onnx_shape} → {out_shape} would need a TRANSPOSE in NHWC")
    y_name, _, params = lw.output(node, fusable=False)
    if params is not None and (not math.isclose(params[0], x.scale, rel_tol=1e-6) or params[1] != x.zero_point):
        raise lw.fail(node, "TFLite needs the same scale and zero point on input and output")
    if len(x.onnx_shape) == 4 and x.onnx_shape[2] * x.onnx_shape[3] == 1 and len(out_shape) == 2:
        lw.act[y_name] = Act(x.index, tuple(out_shape), x.scale, x.zero_point, None, True)  # [N,1,1,C] as is
        return
    y = lw.new_act(y_name, out_shape, x.scale, x.zero_point, flat_from)
    shape_t = lw.const_i32(f"{node.name}_shape", y.tfl_shape)
    lw.b.op("RESHAPE", [x.index, shape_t], [y.index],
            lw.b.options("ReshapeOptions", newShape=list(y.tfl_shape)), "ReshapeOptions")


def _concat(lw: Lowering, node: Any) -> None:
    xs = [lw.inp(node, i) for i in range(len(node.input))]
    xs = [lw.relayout(x, False) if x.as_4d else x for x in xs]
    rank = len(xs[0].onnx_shape)
    axis = int(attrs(node)["axis"]) % rank
    if any(x.flat_from is not None for x in xs):
        raise lw.fail(node, "concatenating flattened NHWC tensors is not supported")
    y, act = lw.result(node, same_as=xs[0])
    tfl_axis = NCHW_TO_NHWC.index(axis) if rank == 4 else axis
    opts = lw.b.options("ConcatenationOptions", axis=tfl_axis, fusedActivationFunction=_act_code(lw, act))
    lw.b.op("CONCATENATION", [x.index for x in xs], [y.index], opts, "ConcatenationOptions")


def _softmax(lw: Lowering, node: Any) -> None:
    x = lw.relayout(lw.inp(node), False)
    axis = int(attrs(node).get("axis", -1)) % len(x.onnx_shape)
    if axis != len(x.onnx_shape) - 1 or len(x.onnx_shape) != 2:
        raise lw.fail(node, "only softmax over the last axis of a 2-D tensor is supported")
    y, _ = lw.result(node, fusable=False)
    lw.b.op("SOFTMAX", [x.index], [y.index], lw.b.options("SoftmaxOptions", beta=1.0), "SoftmaxOptions")


def _pad(lw: Lowering, node: Any) -> None:
    x = lw.inp(node)
    a = attrs(node)
    mode = a.get("mode", b"constant")
    value = lw.g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if mode not in (b"constant", "constant") or (value is not None and float(value) != 0.0) or len(x.onnx_shape) != 4:
        raise lw.fail(node, "only zero constant padding of a 4-D tensor is supported")
    p = [int(v) for v in lw.g.need_const(node.input[1], node)]
    r = len(p) // 2
    if r != 4 or p[0] or p[1] or p[r] or p[r + 1]:
        raise lw.fail(node, f"only spatial padding is supported, got pads {p}")
    y = _pad_op(lw, node.output[0], x, [[0, 0], [p[2], p[r + 2]], [p[3], p[r + 3]], [0, 0]])
    lw.act[node.output[0]] = y


def _relu(lw: Lowering, node: Any) -> None:
    x = lw.inp(node)
    kind = _activation(lw, node)
    y, _ = lw.result(node, fusable=False, as_4d=x.as_4d)
    lw.b.op(kind, [x.index], [y.index])


def _identity(lw: Lowering, node: Any) -> None:
    lw.act[node.output[0]] = lw.inp(node)


LOWERINGS: dict[str, Callable[[Lowering, Any], None]] = {
    "Conv": _conv, "Gemm": _gemm, "Add": _add, "MaxPool": _pool, "AveragePool": _pool,
    "GlobalAveragePool": _mean, "ReduceMean": _mean, "Reshape": _reshape, "Flatten": _reshape,
    "Squeeze": _reshape, "Unsqueeze": _reshape, "Concat": _concat, "Softmax": _softmax,
    "Pad": _pad, "Relu": _relu, "Clip": _relu, "Identity": _identity,
}
