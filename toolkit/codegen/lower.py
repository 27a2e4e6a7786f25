"""Lower each TFLite operator of the graph IR to one kernel call with precomputed integer params.

Validation lives here: anything the kernels would compute differently from TFLite-Micro is
refused with one EdgetkError naming the operator index, its type and why.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from toolkit.codegen import quantize as qz
from toolkit.errors import EdgetkError
from toolkit.tflite.ir import ENUM_OPTIONS, OPTIONS_TYPES, REFUSED_UNKNOWN_ENUMS, Graph, Operator, Tensor

log = logging.getLogger(__name__)

_FIX = ("re-export the model as full-integer int8 (edgetk export), or run it with TFLite-Micro "
        "instead of generated C")
_FIX_EXTERNAL = ("re-quantize it full-integer int8 with `edgetk import MODEL -o BUNDLE` (the same quantizers "
                 "and writer as edgetk's own models), or run it as it is with TFLite-Micro, or with LiteRT on a "
                 "Linux target")
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
# Operators TFLite-Micro runs with zeroed parameters when the file has no options table for them (stride 0,
# softmax beta 0, ...), so a missing table is refused rather than filled with defaults.
NEEDS_OPTIONS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX",
                           "LEAKY_RELU", "UNIDIRECTIONAL_SEQUENCE_LSTM"})
_WINDOW = ("stride_h", "stride_w", "dilation_h_factor", "dilation_w_factor")
_POOL = ("filter_height", "filter_width", "stride_h", "stride_w")
POSITIVE_OPTIONS = {"CONV_2D": _WINDOW, "DEPTHWISE_CONV_2D": _WINDOW, "AVERAGE_POOL_2D": _POOL, "MAX_POOL_2D": _POOL}
# How many inputs TFLite-Micro's Prepare accepts per operator (it refuses other counts); CONCATENATION: any.
INPUT_COUNTS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "PADV2"), (2, 3)),
    **dict.fromkeys(("ADD", "SUB", "MUL", "MINIMUM", "MAXIMUM", "MEAN", "PAD", "TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR",
                     "EXPAND_DIMS"), (2,)),
    **dict.fromkeys(("AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX", "SQUEEZE", "LOGISTIC", "TANH", "HARD_SWISH",
                     "LEAKY_RELU", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE"), (1,)),
    "RESHAPE": (1, 2), "STRIDED_SLICE": (4,), "UNIDIRECTIONAL_SEQUENCE_LSTM": (24,),
}
MAX_ELEMENTS = (1 << 31) - 1  # kernels count elements in int32
INT16_MAX = 32767             # TFLite's ConvParams/DepthwiseParams/PaddingValues hold strides, dilations, paddings


@dataclass(frozen=True)
class Step:
    """One kernel call: C function, param struct fields, const arrays and activation tensors."""

    index: int
    op: str
    family: str                 # kernel file stem (et_conv, et_fc, ...)
    func: str                   # C function
    struct: str = ""            # param struct type ("" for calls without params)
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # field name -> const data
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()
    alias: bool = False         # output is the input's memory (RESHAPE)
    inplace: int | None = None  # input position whose buffer the output may reuse
    inplace_func: str = ""      # C function for the in-place form ("" = func works in place)
    inplace_scratch: int = 0    # ring buffer bytes the in-place form needs
    scratch: int = 0            # int32 scratch bytes
    macs: int = 0
    call_args: tuple[int | str, ...] = ()  # kernel operands when some are const arrays (str: array name)


class Unsupported(Exception):
    """Raised by a lowering rule; turned into an EdgetkError naming the operator."""


def fail(why: str) -> None:
    """Refuse the current operator."""
    raise Unsupported(why)


def lower(graph: Graph) -> list[Step]:
    """Validate the graph and lower every operator to a Step; one EdgetkError lists every problem."""
    problems = _check_graph(graph)
    steps: list[Step] = []
    produced = set(graph.inputs)
    for op in graph.operators:
        rule = RULES.get(op.op)
        try:
            if rule is None:
                fail(f"the generator has no kernel for it (supported: {', '.join(sorted(RULES))})")
            _check_operands(graph, op)
            _check_options(op)
            if op.op not in SELF_CHECKED:
                _check_activations(graph, op)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # inf/nan scales: refused below
                step = rule(graph, op)
            _check_order(graph, step, produced)
            steps.append(step)
        except (Unsupported, qz.MultiplierError) as e:
            problems.append(f"operator {op.index} ({op.op}) is not supported: {e}")
            produced.update(op.outputs)  # later operators are reported for their own faults only
        except Exception as e:  # noqa: BLE001 - a malformed file must never end in a traceback
            log.debug("lowering operator %d (%s) failed", op.index, op.op, exc_info=True)
            problems.append(f"operator {op.index} ({op.op}) could not be lowered ({type(e).__name__}: {e}); "
                            "its operands or options are malformed")
            produced.update(op.outputs)
    problems += _check_io(graph) + _check_outputs_written(graph, produced)
    if problems:
        raise EdgetkError(_problems_message(problems), fix=_fix_for(graph))
    return steps


def _problems_message(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems stop code generation:\n" + "\n".join(f"  - {p}" for p in problems)


def _fix_for(g: Graph) -> str:
    """edgetk's own models (description 'edgetk...') get re-export advice, external models import advice."""
    return _FIX if g.description.startswith("edgetk") else _FIX_EXTERNAL


def _check_graph(g: Graph) -> list[str]:
    if g.n_subgraphs != 1:
        return [f"the model has {g.n_subgraphs} subgraphs; the generator handles one"]
    return []


def _check_io(g: Graph) -> list[str]:
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        return [f"the model has {len(g.inputs)} inputs and {len(g.outputs)} outputs; "
                "edgetk_invoke takes exactly one of each"]
    problems = []
    for t, edge_op in ((g.tensor(g.inputs[0]), "QUANTIZE"), (g.tensor(g.outputs[0]), "DEQUANTIZE")):
        if t.dtype == "float32" and _float_edge(g, t.index, edge_op):
            continue
        if t.dtype != "int8" or t.quant is None:
            problems.append(f"model I/O tensor '{t.name}' is {t.dtype}{'' if t.quant else ' without quantization'}; "
                            f"the generator needs int8 input and output (float32 only through {edge_op} at the edge)")
    return problems


def _check_outputs_written(g: Graph, produced: set[int]) -> list[str]:
    """Every model output is written by an operator (or is the input itself); a constant or an unwritten tensor
    would leave the output buffer as it was."""
    problems = []
    for i in g.outputs:
        t = g.tensor(i)
        if t.is_const or i not in produced:
            what = "a constant" if t.is_const else "not written by any operator"
            problems.append(f"model output '{t.name}' (tensor {i}) is {what}")
    if any(g.tensor(i).is_const for i in g.inputs):
        problems.append("the model input is a constant tensor")
    return problems


def _float_edge(g: Graph, t: int, edge_op: str) -> bool:
    """A float32 model input read only by QUANTIZE, or a float32 output written by DEQUANTIZE."""
    if edge_op == "QUANTIZE":
        users = g.consumers(t)
        return bool(users) and all(op.op == edge_op for op in users)
    return any(op.op == edge_op and t in op.outputs for op in g.operators)


def _check_order(g: Graph, step: Step, produced: set[int]) -> None:
    for t in step.inputs:
        if t not in produced:
            fail(f"it reads tensor '{g.tensor(t).name}' before any operator writes it "
                 "(operators out of order, or a second model input)")
    for t in step.outputs:
        if t in produced or g.tensor(t).is_const:
            fail(f"it writes tensor '{g.tensor(t).name}', which the model input, a constant or an earlier "
                 "operator already holds")
    produced.update(step.outputs)


def _check_operands(g: Graph, op: Operator) -> None:
    """Input/output counts, non-empty static shapes and positive scales of every tensor the operator touches."""
    counts = INPUT_COUNTS.get(op.op, (max(len(op.inputs), 1),))
    if len(op.inputs) not in counts or not op.inputs:
        k = len(op.inputs)
        want = " or ".join(map(str, counts))
        fail(f"input {k} is missing ({op.op} reads {want} inputs; it has {k})" if k < min(counts) else
             f"it has {k} inputs; {op.op} reads {want} (TFLite-Micro refuses other counts)")
    if op.inputs[0] < 0:
        fail("input 0 is absent (tensor -1)")
    if len(op.outputs) != 1:
        fail(f"it has {len(op.outputs)} output tensors; {op.op} writes exactly one")
    for k, i in enumerate(op.intermediates):   # quantized LSTMs carry zero-sized placeholders; TFLite-Micro refuses
        if i < 0:                                 # any other
            fail(f"intermediate {k} is absent (tensor -1); TFLite-Micro only accepts zero-sized intermediate tensors")
        if g.tensor(i).size:
            fail(f"intermediate tensor '{g.tensor(i).name}' is not empty (TFLite-Micro only accepts zero-sized "
                 "intermediates)")
    for i in op.inputs + op.outputs:
        if i < 0:
            continue
        t = g.tensor(i)
        if t.variable and t.is_const:   # TFLite-Micro allocates a variable in its arena and resets it: data unused
            fail(f"tensor '{t.name}' is marked variable but holds constant data (TFLite-Micro resets a variable "
                 "instead of reading its data; the C would read the data)")
        if any(d < 1 for d in t.shape):
            fail(f"tensor '{t.name}' is empty or has a dynamic dimension (shape {list(t.shape)})")
        if t.size > MAX_ELEMENTS:
            fail(f"tensor '{t.name}' has {t.size} elements; the kernels count at most {MAX_ELEMENTS}")
        if t.quant is not None and t.dtype in ("int8", "int16") and min(t.quant.scale) <= 0:
            fail(f"tensor '{t.name}' has quantization scale {min(t.quant.scale)}; scales must be positive")


def _check_options(op: Operator) -> None:
    """The options table TFLite-Micro reads for the operator, with windows and strides of at least 1."""
    want = OPTIONS_TYPES.get(op.op, "")
    if op.options_type and want and op.options_type != want:
        fail(f"its builtin options are {op.options_type}; {op.op} reads {want} (TFLite-Micro would use zeros)")
    keys = POSITIVE_OPTIONS.get(op.op, ())
    if op.op in NEEDS_OPTIONS and not op.options_type:
        fail(f"it has no builtin options ({want}{': ' + ', '.join(keys) if keys else ''}); TFLite-Micro would run "
             "it with zeroed parameters")
    for key in REFUSED_UNKNOWN_ENUMS:   # the reader names known values; TFLite-Micro refuses unknown ones
        if key in op.options and not isinstance(op.options[key], str):
            fail(f"option {key} = {op.options[key]} is not a {ENUM_OPTIONS[key]} value (TFLite-Micro refuses the "
                 "model)")
    for key in keys:
        v = op.options.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= INT16_MAX:
            fail(f"option {key} = {v}; it must be 1..{INT16_MAX} (TFLite-Micro's kernels hold it in an int16)")


def _check_activations(g: Graph, op: Operator) -> None:
    for i in op.inputs + op.outputs:
        if i < 0:
            continue
        t = g.tensor(i)
        if t.variable:
            fail(f"tensor '{t.name}' is a variable (only the LSTM's state variables are supported)")
        if t.is_const:
            continue
        if t.dtype != "int8":
            what = "int16 activations" if t.dtype == "int16" else f"a {t.dtype} activation"
            fail(f"tensor '{t.name}' holds {what}; only int8 activations are supported")
        if t.quant is None:
            fail(f"activation '{t.name}' has no quantization parameters")
        if t.quant.per_channel:
            fail(f"activation '{t.name}' is quantized per channel; activations must be per tensor")


def _const(g: Graph, op: Operator, pos: int, what: str, dtype: str) -> Tensor:
    if pos >= len(op.inputs) or op.inputs[pos] < 0:
        fail(f"its {what} is missing")
    t = g.tensor(op.inputs[pos])
    if not t.is_const:
        fail(f"its {what} '{t.name}' is not a constant")
    if t.dtype != dtype:
        fail(f"its {what} '{t.name}' is {t.dtype}; {dtype} is required")
    return t


def _io(g: Graph, op: Operator) -> tuple[Tensor, Tensor]:
    return g.tensor(op.inputs[0]), g.tensor(op.outputs[0])


def _quant(t: Tensor) -> Any:
    if t.quant is None:
        fail(f"tensor '{t.name}' ({t.dtype}) has no quantization parameters")
    return t.quant


def _scale(t: Tensor) -> float:
    return _quant(t).scale[0]


def _zp(t: Tensor) -> int:
    return _quant(t).zero_point[0]


def _act(op: Operator, out: Tensor) -> tuple[int, int]:
    act = op.options.get("fused_activation_function", "NONE")
    if act not in ACTIVATIONS:
        fail(f"fused activation {act} is not supported (only {', '.join(ACTIVATIONS)})")
    return qz.activation_range(act, _scale(out), _zp(out))


def _shape4(shape: tuple[int, ...]) -> list[int]:
    if len(shape) > 4:
        fail(f"a {len(shape)}-D tensor; at most 4-D is supported")
    return [1] * (4 - len(shape)) + list(shape)


def _same_quant(a: Tensor, b: Tensor, why: str) -> None:
    if _quant(a).scale != _quant(b).scale or a.quant.zero_point != b.quant.zero_point:
        fail(f"{why}: input '{a.name}' and output '{b.name}' have different quantization")


def _weights(g: Graph, op: Operator, channels: int, axis: int, symmetric: bool) -> Tensor:
    w = _const(g, op, 1, "weights", "int8")
    q = w.quant
    if q is None:
        fail(f"weights '{w.name}' are not quantized")
    if q.per_channel and (len(q.scale) != channels or q.axis != axis):
        fail(f"weights '{w.name}' have {len(q.scale)} scales along axis {q.axis}; per-channel "
             f"quantization needs {channels} scales along axis {axis}")
    if symmetric and any(z != 0 for z in q.zero_point):
        fail(f"weights '{w.name}' have a non-zero zero point; int8 kernels assume symmetric weights")
    return w


def _bias(g: Graph, op: Operator, channels: int) -> np.ndarray | None:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None
    b = _const(g, op, 2, "bias", "int32")
    if b.size != channels:
        fail(f"bias '{b.name}' has {b.size} values for {channels} channels")
    return b.data.reshape(-1).astype(np.int32)


def _check_bias_scale(x: Tensor, w: Tensor, bias: Tensor, y: Tensor) -> None:
    """TFLite-Micro's GetQuantizedConvolutionMultipler check (per-tensor FULLY_CONNECTED): the bias scale must be
    input × weight scale, within 2 % of the output scale (float32 product, as in C++)."""
    product = float(np.float32(_scale(x)) * np.float32(_scale(w)))
    s_b = bias.quant.scale[0] if bias.quant is not None else 0.0
    if not abs(product - s_b) / _scale(y) <= 0.02:
        fail(f"bias '{bias.name}' has scale {s_b:g}, not input × weight scale {product:g} (TFLite-Micro refuses a "
             "difference beyond 2 % of the output scale)")


def _acc_bounds(w_abs_sums: np.ndarray, bias: np.ndarray | None) -> list[int]:
    """The largest |int32 accumulator| per output channel: 255 (|x - zero point|) × sum |w| + |bias|."""
    acc = 255 * w_abs_sums.astype(np.int64) + (np.abs(bias.astype(np.int64)) if bias is not None else 0)
    worst = int(acc.max(initial=0))
    if worst >= qz.INT32_LIMIT:
        fail(f"its int32 accumulator can reach {worst} (255 × sum |weights| + |bias|): beyond int32, an overflow "
             "in TFLite-Micro's kernels too")
    return [int(v) for v in acc]


def _padding(kind: str, in_size: int, k: int, stride: int, dil: int, out_size: int) -> int:
    eff = (k - 1) * dil + 1
    want = (in_size + stride - 1) // stride if kind == "SAME" else (in_size + stride - eff) // stride
    if kind not in ("SAME", "VALID"):
        fail(f"padding {kind}")
    if want != out_size:
        fail(f"output size {out_size} does not match {kind} padding (expected {want})")
    pad = max((out_size - 1) * stride + eff - in_size, 0) // 2
    if pad > INT16_MAX:
        fail(f"a padding of {pad}: beyond TFLite-Micro's int16 padding values")
    return pad


def _conv_common(g: Graph, op: Operator, depthwise: bool) -> dict[str, Any]:
    x, y = _io(g, op)
    if len(x.shape) != 4 or len(y.shape) != 4:
        fail("input and output must be 4-D NHWC")
    n, ih, iw, ic = x.shape
    on, oh, ow, oc = y.shape
    if on != n:   # both runtimes compute the input's batches and leave the rest of the output as it was
        fail(f"output {list(y.shape)} has {on} batches; input {list(x.shape)} has {n}")
    w = _weights(g, op, oc, 3 if depthwise else 0, symmetric=True)
    fits = len(w.shape) == 4 and ((w.shape[0], w.shape[3]) == (1, oc) if depthwise else w.shape[0] == oc)
    if not fits:
        want = f"[1, kh, kw, {oc}]" if depthwise else f"[{oc}, kh, kw, {ic}]"
        fail(f"weights '{w.name}' {list(w.shape)} do not fit: {want} is required")
    kh, kw = w.shape[1], w.shape[2]
    o = op.options
    sh, sw = o.get("stride_h", 1), o.get("stride_w", 1)
    dh, dw = o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
    w_abs = np.abs(w.data.astype(np.int64))
    per_channel = w_abs.reshape(-1, oc).sum(axis=0) if depthwise else w_abs.reshape(oc, -1).sum(axis=1)
    b = _bias(g, op, oc)
    mult, shift = qz.conv_multipliers(_scale(x), w.quant.scale, _scale(y), oc, _acc_bounds(per_channel, b))
    lo, hi = _act(op, y)
    fields = dict(batches=n, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw,
                  stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw,
                  pad_h=_padding(o.get("padding", "VALID"), ih, kh, sh, dh, oh),
                  pad_w=_padding(o.get("padding", "VALID"), iw, kw, sw, dw, ow),
                  depth_multiplier=max(oc // ic, 1), input_offset=-_zp(x), output_offset=_zp(y),
                  act_min=lo, act_max=hi)
    arrays = {"filter": w.data.astype(np.int8), "mult": np.array(mult, np.int32),
              "shift": np.array(shift, np.int32)}
    if b is not None:
        arrays["bias"] = b
    return dict(fields=fields, arrays=arrays, macs=n * oh * ow * oc * kh * kw * (1 if depthwise else ic))


def _inplace_ring(f: dict[str, Any]) -> tuple[str, int]:
    """(function suffix, ring bytes) for running a conv in place; ("", 0) when not allowed."""
    out_row, in_row = f["out_w"] * f["out_c"], f["in_w"] * f["in_c"]
    if f["batches"] != 1 or out_row > in_row:
        return "", 0
    out_bytes = f["out_h"] * out_row
    px_ok = f["stride_h"] == f["stride_w"] == 1 and f["in_w"] == f["out_w"] and f["out_c"] <= f["in_c"]
    px_ring = (f["pad_h"] * f["out_w"] + f["pad_w"] + 1) * f["out_c"]
    if px_ok and px_ring < out_bytes:
        return "_inplace_px", px_ring
    row_ring = (f["pad_h"] + 1) * out_row
    return ("_inplace", row_ring) if row_ring < out_bytes else ("", 0)


def _conv_step(op: Operator, c: dict[str, Any], func: str) -> Step:
    suffix, ring = _inplace_ring(c["fields"])
    return Step(op.index, op.op, "et_conv", func, "et_conv_params", c["fields"], c["arrays"],
                (op.inputs[0],), op.outputs, inplace=0 if ring else None,
                inplace_func=func + suffix if ring else "", inplace_scratch=ring, macs=c["macs"])


def lower_conv(g: Graph, op: Operator) -> Step:
    """CONV_2D (per-channel or per-tensor symmetric int8 weights, int32 bias)."""
    c = _conv_common(g, op, depthwise=False)
    if g.tensor(op.inputs[1]).shape[3] != c["fields"]["in_c"]:
        fail("grouped convolution (filter depth differs from input channels)")
    return _conv_step(op, c, "et_conv2d_s8")


def lower_depthwise(g: Graph, op: Operator) -> Step:
    """DEPTHWISE_CONV_2D with any depth multiplier."""
    c = _conv_common(g, op, depthwise=True)
    f = c["fields"]
    if f["out_c"] != f["in_c"] * f["depth_multiplier"]:
        fail(f"output channels {f['out_c']} are not a multiple of input channels {f['in_c']}")
    dm = op.options.get("depth_multiplier", f["depth_multiplier"])
    if dm != f["depth_multiplier"]:   # TFLite-Micro computes with the option, the C with the channel ratio
        fail(f"option depth_multiplier = {dm}, but output / input channels are {f['out_c']} / {f['in_c']} = "
             f"{f['depth_multiplier']} (TFLite-Micro computes with the option)")
    return _conv_step(op, c, "et_depthwise_conv2d_s8")


def lower_fc(g: Graph, op: Operator) -> Step:
    """FULLY_CONNECTED with int8 weights [out, in]."""
    x, y = _io(g, op)
    if op.options.get("weights_format", 0) != 0:
        fail("shuffled weights format")
    w = _const(g, op, 1, "weights", "int8")
    if len(w.shape) != 2:
        fail(f"weights '{w.name}' are {len(w.shape)}-D; 2-D [out, in] is required")
    out_d, in_d = w.shape
    w = _weights(g, op, out_d, 0, symmetric=False)
    if w.quant.per_channel and any(z != 0 for z in w.quant.zero_point):
        fail(f"per-channel weights '{w.name}' with non-zero zero points")
    if in_d < 1 or x.size % in_d or y.size != x.size // in_d * out_d:
        fail(f"input {list(x.shape)} does not fit weights {list(w.shape)} and output {list(y.shape)}")
    if not y.shape or y.shape[-1] != out_d:  # TFLite-Micro takes its batches from the output's other dimensions
        fail(f"output {list(y.shape)} must end in the weights' {out_d} units (TFLite-Micro reads "
             f"{y.size // max(y.shape[-1] if y.shape else 1, 1)} batches from it)")
    w_zp = 0 if w.quant.per_channel else w.quant.zero_point[0]
    b = _bias(g, op, out_d)
    if b is not None and not w.quant.per_channel:
        _check_bias_scale(x, w, g.tensor(op.inputs[2]), y)
    bounds = _acc_bounds(np.abs(w.data.astype(np.int64) - w_zp).sum(axis=1), b)
    mult, shift = qz.conv_multipliers(_scale(x), w.quant.scale, _scale(y), out_d, bounds)
    lo, hi = _act(op, y)
    fields = dict(batches=x.size // in_d, in_depth=in_d, out_depth=out_d, input_offset=-_zp(x),
                  filter_offset=-w.quant.zero_point[0] if not w.quant.per_channel else 0,
                  output_offset=_zp(y), act_min=lo, act_max=hi)
    arrays = {"filter": w.data.astype(np.int8), "mult": np.array(mult, np.int32),
              "shift": np.array(shift, np.int32)}
    if b is not None:
        arrays["bias"] = b
    return Step(op.index, op.op, "et_fc", "et_fully_connected_s8", "et_fc_params", fields, arrays,
                (op.inputs[0],), op.outputs, macs=x.size // in_d * in_d * out_d)


def _strides(shape: list[int], out: list[int]) -> list[int]:
    strides, acc = [0, 0, 0, 0], 1
    for d in range(3, -1, -1):
        if shape[d] not in (1, out[d]):
            fail(f"shape {shape} does not broadcast to {out}")
        strides[d] = 0 if shape[d] == 1 and out[d] != 1 else acc
        acc *= shape[d]
    return strides


def lower_add(g: Graph, op: Operator) -> Step:
    """ADD (int8, broadcasting, TFLite's left_shift = 20 scheme; 5-/6-D or constant operands: et_binary)."""
    a, b, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    if a.is_const or b.is_const or len(y.shape) > 4:
        return _ops.lower_add_nd(g, op)
    _ops.check_broadcast(a, b, y)
    out4 = _shape4(y.shape)
    twice_max = 2.0 * max(_scale(a), _scale(b))
    m1, s1 = qz.quantize_multiplier(_scale(a) / twice_max)
    m2, s2 = qz.quantize_multiplier(_scale(b) / twice_max)
    mo, so = qz.quantize_multiplier(twice_max / (float(1 << 20) * _scale(y)), 255 << 21)
    lo, hi = _act(op, y)
    fields = dict(out_shape=out4, in1_stride=_strides(_shape4(a.shape), out4),
                  in2_stride=_strides(_shape4(b.shape), out4), left_shift=20,
                  in1_offset=-_zp(a), in1_mult=m1, in1_shift=s1, in2_offset=-_zp(b), in2_mult=m2,
                  in2_shift=s2, output_offset=_zp(y), out_mult=mo, out_shift=so, act_min=lo, act_max=hi)
    inplace = 0 if a.size == y.size else (1 if b.size == y.size else None)
    return Step(op.index, op.op, "et_add", "et_add_s8", "et_add_params", fields, {},
                (op.inputs[0], op.inputs[1]), op.outputs, inplace=inplace)


def _lower_pool(g: Graph, op: Operator, func: str) -> Step:
    x, y = _io(g, op)
    if len(x.shape) != 4 or len(y.shape) != 4:
        fail("input and output must be 4-D NHWC")
    if y.shape[0] != x.shape[0] or y.shape[3] != x.shape[3]:
        fail(f"output {list(y.shape)} does not keep the batches and channels of input {list(x.shape)}")
    _same_quant(x, y, "pooling does not requantize")
    n, ih, iw, c = x.shape
    o = op.options
    kh, kw, sh, sw = o["filter_height"], o["filter_width"], o.get("stride_h", 1), o.get("stride_w", 1)
    oh, ow = y.shape[1], y.shape[2]
    lo, hi = _act(op, y)
    fields = dict(batches=n, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow, k_h=kh, k_w=kw,
                  stride_h=sh, stride_w=sw, pad_h=_padding(o.get("padding", "VALID"), ih, kh, sh, 1, oh),
                  pad_w=_padding(o.get("padding", "VALID"), iw, kw, sw, 1, ow), act_min=lo, act_max=hi)
    return Step(op.index, op.op, "et_pool", func, "et_pool_params", fields, {}, (op.inputs[0],),
                op.outputs)


def lower_avg_pool(g: Graph, op: Operator) -> Step:
    """AVERAGE_POOL_2D."""
    return _lower_pool(g, op, "et_avg_pool_s8")


def lower_max_pool(g: Graph, op: Operator) -> Step:
    """MAX_POOL_2D."""
    return _lower_pool(g, op, "et_max_pool_s8")


def lower_mean(g: Graph, op: Operator) -> Step:
    """MEAN over constant axes (int8 in and out)."""
    x, y = _io(g, op)
    axes_t = _const(g, op, 1, "axis", "int32")
    rank = len(x.shape)
    bad = [int(a) for a in axes_t.data.reshape(-1) if not -rank <= int(a) < rank]
    if bad:  # a wrapped axis (9 mod 4) made other bytes than TFLite-Micro
        fail(f"axis {bad[0]} lies outside [-{rank}, {rank}) for the rank-{rank} input {list(x.shape)}")
    axes = sorted({int(a) % rank for a in axes_t.data.reshape(-1)}) if rank else []
    shape4 = _shape4(x.shape)
    reduce = [0] * 4
    for a in axes:
        reduce[a + 4 - rank] = 1
    keep = [1 if d in axes else x.shape[d] for d in range(rank)]
    if [d for d in keep if d != 1] != [d for d in y.shape if d != 1]:   # only 1s may come and go
        want = keep if op.options.get("keep_dims", False) else [x.shape[d] for d in range(rank) if d not in axes]
        fail(f"output {list(y.shape)} is not the input {list(x.shape)} reduced over axes {axes} ({want})")
    n = int(np.prod([shape4[d] for d in range(4) if reduce[d]]))
    mult, shift = qz.mean_multiplier(_scale(x), _scale(y), n)
    stride = [int(np.prod(shape4[d + 1:])) for d in range(4)]
    fields = dict(in_shape=shape4, stride=stride, reduce=reduce, input_zp=_zp(x), output_zp=_zp(y),
                  mult=mult, shift=shift, num_elements=n)
    return Step(op.index, op.op, "et_pool", "et_mean_s8", "et_mean_params", fields, {},
                (op.inputs[0],), op.outputs)


def lower_softmax(g: Graph, op: Operator) -> Step:
    """SOFTMAX int8 -> int8 along the last axis."""
    x, y = _io(g, op)
    if abs(_scale(y) - 1.0 / 256) > 1e-9 or _zp(y) != -128:
        fail(f"output '{y.name}' must have scale 1/256 and zero point -128 (TFLite-Micro requires it)")
    beta = op.options.get("beta", 1.0)
    if not (isinstance(beta, float) and 0 < beta < float("inf")):
        fail(f"option beta = {beta}; it must be a positive finite number")
    if x.shape != y.shape:
        fail(f"input {list(x.shape)} and output {list(y.shape)} differ")
    depth = x.shape[-1] if x.shape else 1
    mult, left, diff_min = qz.softmax_params(op.options.get("beta", 1.0), _scale(x))
    fields = dict(outer=x.size // depth, depth=depth, input_multiplier=mult, input_left_shift=left,
                  diff_min=diff_min)
    return Step(op.index, op.op, "et_softmax", "et_softmax_s8", "et_softmax_params", fields, {},
                (op.inputs[0],), op.outputs, inplace=0)


def lower_reshape(g: Graph, op: Operator) -> Step:
    """RESHAPE / SQUEEZE / EXPAND_DIMS: the output aliases the input (no code)."""
    x, y = _io(g, op)
    if x.size != y.size:
        fail(f"input {list(x.shape)} and output {list(y.shape)} differ in size")
    _same_quant(x, y, "reshape does not requantize")
    return Step(op.index, op.op, "et_shape", "et_copy_s8", "", {"n": y.size}, {}, (op.inputs[0],),
                op.outputs, alias=True)


def lower_pad(g: Graph, op: Operator) -> Step:
    """PAD / PADV2 with constant paddings (pad value: the zero point, or PADV2's constant)."""
    x, y = _io(g, op)
    pads = _const(g, op, 1, "paddings", "int32").data
    rank = len(x.shape)
    if pads.shape != (rank, 2) or rank > 4:
        fail(f"paddings of shape {list(pads.shape)} for a {rank}-D input (at most 4-D; [rank, 2] paddings)")
    _same_quant(x, y, "pad does not requantize")
    value = _zp(y)
    if op.op == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(_const(g, op, 2, "constant value", "int8").data.reshape(-1)[0])
    before, after = [0] * 4, [0] * 4
    for d in range(rank):
        before[d + 4 - rank], after[d + 4 - rank] = int(pads[d][0]), int(pads[d][1])
    if min(before + after) < 0:
        fail("negative paddings")
    want = [a + b + c for a, b, c in zip(_shape4(x.shape), before, after)]
    if want != _shape4(y.shape):
        fail(f"output {list(y.shape)} is not the padded input {want[4 - rank:]}")
    fields = dict(in_shape=_shape4(x.shape), before=before, after=after, pad_value=value)
    return Step(op.index, op.op, "et_shape", "et_pad_s8", "et_pad_params", fields, {}, (op.inputs[0],),
                op.outputs)


def lower_concat(g: Graph, op: Operator) -> Step:
    """CONCATENATION of activations with the output's quantization."""
    y = g.tensor(op.outputs[0])
    if op.options.get("fused_activation_function", "NONE") != "NONE":
        fail("a fused activation on concatenation")
    rank = len(y.shape)
    axis = op.options.get("axis", 0)
    if not -rank <= axis < rank:
        fail(f"axis {axis} of a {rank}-D output")
    axis %= rank
    ins = [g.tensor(i) for i in op.inputs]
    for t in ins:
        if t.is_const:
            fail(f"constant input '{t.name}'")
        if len(t.shape) != rank or any(a != b for d, (a, b) in enumerate(zip(t.shape, y.shape)) if d != axis):
            fail(f"input {list(t.shape)} does not fit output {list(y.shape)} along axis {axis}")
        _same_quant(t, y, "concatenation does not requantize")
    if sum(t.shape[axis] for t in ins) != y.shape[axis]:
        fail(f"the inputs' sizes along axis {axis} do not add up to the output's {y.shape[axis]}")
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    chunks = [t.size // outer for t in ins]
    fields = dict(outer=outer, n_inputs=len(ins), out_chunk=sum(chunks))
    return Step(op.index, op.op, "et_shape", "et_concat_s8", "et_concat_params", fields,
                {"chunks": np.array(chunks, np.int32)}, op.inputs, op.outputs)


RULES: dict[str, Callable[[Graph, Operator], Step]] = {
    "CONV_2D": lower_conv,
    "DEPTHWISE_CONV_2D": lower_depthwise,
    "FULLY_CONNECTED": lower_fc,
    "ADD": lower_add,
    "AVERAGE_POOL_2D": lower_avg_pool,
    "MAX_POOL_2D": lower_max_pool,
    "MEAN": lower_mean,
    "SOFTMAX": lower_softmax,
    "RESHAPE": lower_reshape,
    "SQUEEZE": lower_reshape,
    "EXPAND_DIMS": lower_reshape,
    "PAD": lower_pad,
    "PADV2": lower_pad,
    "CONCATENATION": lower_concat,
}


from toolkit.codegen import lower_lstm as _lstm  # noqa: E402 - the rule modules import this module's helpers
from toolkit.codegen import lower_ops as _ops  # noqa: E402

RULES.update(_ops.RULES)
RULES["UNIDIRECTIONAL_SEQUENCE_LSTM"] = _lstm.lower_lstm
SELF_CHECKED = _ops.SELF_CHECKED | {"UNIDIRECTIONAL_SEQUENCE_LSTM"}
