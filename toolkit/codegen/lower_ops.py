"""Lowering rules for element-wise ops, activations, quantization at the edges, layout ops and the LSTM.

Each rule computes the integer parameters TFLite-Micro's Prepare computes (with its float32/double
arithmetic reproduced exactly) and refuses what the kernels would compute differently.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from toolkit.codegen import quantize as qz
from toolkit.codegen.lower import Step, _act, _const, _io, _scale, _zp, fail
from toolkit.tflite.ir import Graph, Operator, Tensor

DIMS = 6  # et_kernels.h ET_DIMS


def _shape6(shape: tuple[int, ...]) -> list[int]:
    if len(shape) > DIMS:
        fail(f"a {len(shape)}-D tensor; at most {DIMS}-D is supported")
    return [1] * (DIMS - len(shape)) + list(shape)


def _row_major(shape: list[int]) -> list[int]:
    return [int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(len(shape))]


def _broadcast_strides(shape: list[int], out: list[int]) -> list[int]:
    strides = _row_major(shape)
    for d in range(DIMS):
        if shape[d] not in (1, out[d]):
            fail(f"shape {shape} does not broadcast to {out}")
        if shape[d] == 1:
            strides[d] = 0
    return strides


def _lead(shape: list[int]) -> list[int]:
    """The shape without its leading 1s (both runtimes extend shapes with them)."""
    return shape[next((k for k, d in enumerate(shape) if d != 1), len(shape)):]


def check_broadcast(a: Tensor, b: Tensor, y: Tensor) -> None:
    """The output must be the broadcast of the two operand shapes: an output dimension beyond both operands' was
    filled by repetition in the C, while TFLite-Micro gave other bytes or aborted (bench/fuzz_models.py)."""
    try:
        want = list(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        fail(f"operands {list(a.shape)} and {list(b.shape)} do not broadcast")
    if _lead(want) != _lead(list(y.shape)):
        fail(f"output {list(y.shape)} is not the broadcast {want} of its operands {list(a.shape)} and "
             f"{list(b.shape)}")


def _operand(g: Graph, op: Operator, pos: int) -> Tensor:
    t = g.tensor(op.inputs[pos])
    if t.is_const and (t.dtype != "int8" or t.quant is None or t.quant.per_channel):
        fail(f"constant operand '{t.name}' must be int8 with per-tensor quantization")
    return t


def _binary_step(g: Graph, op: Operator, func: str, fields: dict[str, Any]) -> Step:
    """A two-operand element-wise step; constant operands become const arrays."""
    a, b, y = _operand(g, op, 0), _operand(g, op, 1), g.tensor(op.outputs[0])
    check_broadcast(a, b, y)
    out6 = _shape6(y.shape)
    base = dict(out_shape=out6, in1_stride=_broadcast_strides(_shape6(a.shape), out6),
                in2_stride=_broadcast_strides(_shape6(b.shape), out6), in1_offset=-_zp(a), in2_offset=-_zp(b),
                output_offset=_zp(y), left_shift=0, in1_mult=0, in1_shift=0, in2_mult=0, in2_shift=0,
                out_mult=0, out_shift=0, act_min=-128, act_max=127)
    base.update(fields)
    arrays: dict[str, np.ndarray] = {}
    args: list[int | str] = []
    for k, t in enumerate((a, b)):
        if t.is_const:
            arrays[f"operand{k + 1}"] = t.data.astype(np.int8)
            args.append(f"operand{k + 1}")
        else:
            args.append(t.index)
    if all(isinstance(x, str) for x in args):
        fail("both operands are constants (fold them before conversion)")
    ins = tuple(x for x in args if isinstance(x, int))
    inplace = next((k for k, t in enumerate(ins) if g.tensor(t).size == y.size), None)
    return Step(op.index, op.op, "et_binary", func, "et_binary_params", base, arrays, ins, op.outputs,
                inplace=inplace, call_args=tuple(args))


def lower_mul(g: Graph, op: Operator) -> Step:
    """MUL int8 (broadcasting): MBQM((a - za)(b - zb)) with s_a * s_b / s_out (double)."""
    a, b, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    mult, shift = qz.quantize_multiplier(float(_scale(a)) * float(_scale(b)) / float(_scale(y)), 255 * 255)
    lo, hi = _act(op, y)
    return _binary_step(g, op, "et_mul_s8", dict(out_mult=mult, out_shift=shift, act_min=lo, act_max=hi))


def _add_sub(g: Graph, op: Operator, func: str) -> Step:
    """ADD/SUB int8 (broadcasting), TFLite's left_shift = 20 scheme."""
    a, b, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    twice_max = 2.0 * max(_scale(a), _scale(b))
    m1, s1 = qz.quantize_multiplier(_scale(a) / twice_max)
    m2, s2 = qz.quantize_multiplier(_scale(b) / twice_max)
    mo, so = qz.quantize_multiplier(twice_max / (float(1 << 20) * _scale(y)), 255 << 21)
    lo, hi = _act(op, y)
    return _binary_step(g, op, func, dict(left_shift=20, in1_mult=m1, in1_shift=s1, in2_mult=m2,
                                          in2_shift=s2, out_mult=mo, out_shift=so, act_min=lo, act_max=hi))


def lower_sub(g: Graph, op: Operator) -> Step:
    """SUB int8 (broadcasting up to 6-D, constant operands)."""
    return _add_sub(g, op, "et_sub_s8")


def lower_add_nd(g: Graph, op: Operator) -> Step:
    """ADD int8 beyond 4-D or with a constant operand (lower.lower_add takes the rest)."""
    return _add_sub(g, op, "et_add_nd_s8")


def lower_minimum(g: Graph, op: Operator) -> Step:
    """MINIMUM int8 (broadcasting; compares the stored int8 values, no requantization)."""
    return _binary_step(g, op, "et_minimum_s8", {})


def lower_maximum(g: Graph, op: Operator) -> Step:
    """MAXIMUM int8 (broadcasting; compares the stored int8 values, no requantization)."""
    return _binary_step(g, op, "et_maximum_s8", {})


def _same_size(x: Tensor, y: Tensor) -> None:
    if x.size != y.size:
        fail(f"input {list(x.shape)} and output {list(y.shape)} differ in size")


def _unary(g: Graph, op: Operator, func: str, **fields: int) -> Step:
    x, y = _io(g, op)
    _same_size(x, y)
    base = dict(n=x.size, input_zp=_zp(x), output_zp=_zp(y), mult=0, shift=0, mult2=0, shift2=0,
                range_radius=0, act_min=-128, act_max=127)
    base.update(fields)
    return Step(op.index, op.op, "et_unary", func, "et_unary_params", base, {}, (op.inputs[0],), op.outputs,
                inplace=0)


def _sigmoid_like(g: Graph, op: Operator, func: str) -> Step:
    x, _ = _io(g, op)
    mult, shift = qz.frexp_multiplier(float(_scale(x)) * float(1 << 27))  # 4 integer bits
    if mult >= 1 << 31 or shift < 0:
        fail(f"input scale {_scale(x)} is outside what the int8 kernel handles")
    return _unary(g, op, func, mult=mult, shift=shift, range_radius=qz.input_radius(4, shift))


def lower_logistic(g: Graph, op: Operator) -> Step:
    """LOGISTIC int8 (output zero point -128, gemmlowp fixed point)."""
    if _zp(g.tensor(op.outputs[0])) != -128:
        fail("output zero point must be -128 (TFLite-Micro requires it)")
    return _sigmoid_like(g, op, "et_logistic_s8")


def lower_tanh(g: Graph, op: Operator) -> Step:
    """TANH int8 (the kernel's output has zero point 0 and scale 1/128, as TFLite's)."""
    return _sigmoid_like(g, op, "et_tanh_s8")


def lower_hard_swish(g: Graph, op: Operator) -> Step:
    """HARD_SWISH int8 (16-bit fixed point, float32 scale arithmetic as TFLite-Micro's Prepare)."""
    x, y = _io(g, op)
    hires = np.float32(1.0 / 128.0) * qz.f32(_scale(x))
    m_out, e_out = qz.quantize_multiplier(float(hires / qz.f32(_scale(y))))
    m_rel, e_rel = qz.quantize_multiplier(float(hires / np.float32(3.0 / 32768.0)))
    if e_out > 0 or e_out < -15:
        fail(f"input/output scales {_scale(x)}/{_scale(y)} give an output shift the kernel does not handle")
    return _unary(g, op, "et_hard_swish_s8", mult=qz.downscale_multiplier_16(m_out), shift=e_out,
                  mult2=qz.downscale_multiplier_16(m_rel), shift2=e_rel)


def lower_leaky_relu(g: Graph, op: Operator) -> Step:
    """LEAKY_RELU int8: identity and alpha requantization (float32 scale arithmetic)."""
    x, y = _io(g, op)
    alpha = np.float32(op.options.get("alpha", 0.2))
    ma, sa = qz.quantize_multiplier(float(qz.f32(_scale(x)) * alpha / qz.f32(_scale(y))), 255)
    mi, si = qz.quantize_multiplier(float(qz.f32(_scale(x)) / qz.f32(_scale(y))), 255)
    return _unary(g, op, "et_leaky_relu_s8", mult=mi, shift=si, mult2=ma, shift2=sa)


def lower_relu(g: Graph, op: Operator) -> Step:
    """RELU int8: requantize to the output, clamp at the output's zero."""
    x, y = _io(g, op)
    mult, shift = qz.quantize_multiplier(float(_scale(x)) / float(_scale(y)), 255)
    return _unary(g, op, "et_relu_s8", mult=mult, shift=shift, act_min=max(-128, _zp(y)))


def lower_relu6(g: Graph, op: Operator) -> Step:
    """RELU6 int8: clamp the stored values to [zero, six] of the input (no requantization, as TFLite-Micro)."""
    x, _ = _io(g, op)
    six = max(-128, min(127, qz.round_half_away(float(np.float32(6.0) / qz.f32(_scale(x)))) + _zp(x)))
    return _unary(g, op, "et_relu6_s8", act_min=_zp(x), act_max=six)


def lower_quantize(g: Graph, op: Operator) -> Step:
    """QUANTIZE float32 -> int8 (model input) or int8 -> int8 (requantize)."""
    x, y = _io(g, op)
    _same_size(x, y)
    if y.dtype != "int8" or y.quant is None or y.quant.per_channel:
        fail(f"output '{y.name}' is {y.dtype}; only per-tensor int8 outputs are supported")
    if x.dtype == "int8" and x.quant is not None and not x.quant.per_channel:
        mult, shift = qz.quantize_multiplier(float(_scale(x)) / float(_scale(y)), 255)
        return _unary(g, op, "et_requantize_s8", mult=mult, shift=shift)
    if x.dtype != "float32":
        fail(f"input '{x.name}' is {x.dtype}; float32 (at the model input) or int8 is supported")
    if op.inputs[0] not in g.inputs:
        fail(f"float32 input '{x.name}' is not the model's input (float tensors inside the graph are not supported)")
    th = np.array(qz.quantize_thresholds(_scale(y), _zp(y)), np.int32)
    return Step(op.index, op.op, "et_quant", "et_quantize_f32_s8", "et_quantize_params", {"n": x.size},
                {"thresholds": th}, (op.inputs[0],), op.outputs)


def lower_dequantize(g: Graph, op: Operator) -> Step:
    """DEQUANTIZE int8 -> float32 at the model output (a 256-entry table of float32 bit patterns)."""
    x, y = _io(g, op)
    _same_size(x, y)
    if x.dtype != "int8" or x.quant is None or x.quant.per_channel or y.dtype != "float32":
        fail(f"only per-tensor int8 -> float32 is supported ('{x.name}' is {x.dtype}, '{y.name}' {y.dtype})")
    if op.outputs[0] not in g.outputs:
        fail(f"float32 output '{y.name}' is not the model's output (float tensors inside the graph are not supported)")
    lut = np.array(qz.dequantize_lut(_scale(x), _zp(x)), np.uint32).view(np.int32)
    return Step(op.index, op.op, "et_quant", "et_dequantize_s8_f32", "et_dequantize_params", {"n": x.size},
                {"lut": lut}, (op.inputs[0],), op.outputs)


def _gather(op: Operator, out_shape: list[int], stride: list[int], base: int) -> Step:
    pad = DIMS - len(out_shape)
    fields = dict(out_shape=[1] * pad + out_shape, stride=[0] * pad + stride, base=base)
    return Step(op.index, op.op, "et_layout", "et_gather_s8", "et_gather_params", fields, {}, (op.inputs[0],),
                op.outputs)


def lower_transpose(g: Graph, op: Operator) -> Step:
    """TRANSPOSE with a constant permutation (up to 6-D)."""
    x, y = _io(g, op)
    perm = [int(p) for p in _const(g, op, 1, "permutation", "int32").data.reshape(-1)]
    if sorted(perm) != list(range(len(x.shape))):
        fail(f"permutation {perm} does not fit a {len(x.shape)}-D input")
    if len(perm) > DIMS:
        fail(f"a {len(perm)}-D transpose; at most {DIMS}-D is supported")
    istr = _row_major(list(x.shape))
    out = [x.shape[p] for p in perm]
    if out != list(y.shape):
        fail(f"output shape {list(y.shape)} is not the permuted input shape {out}")
    return _gather(op, out, [istr[p] for p in perm], 0)


def _slice_axis(begin: int, end: int, stride: int, size: int, bit: int, o: dict[str, Any]) -> tuple[int, int]:
    """(start, count) along one axis as TFLite's StridedSliceStartForAxis/EndForAxis."""
    lo, hi = (0, size) if stride > 0 else (-1, size - 1)
    start = begin + size if begin < 0 else begin
    start = min(max(start, lo), hi)
    if o.get("begin_mask", 0) & bit:
        start = 0 if stride > 0 else size - 1
    if o.get("shrink_axis_mask", 0) & bit:
        return start, 0 if start >= size else 1
    stop = end + size if end < 0 else end
    stop = min(max(stop, lo), hi)
    if o.get("end_mask", 0) & bit:
        stop = size if stride > 0 else -1
    count = -(-(stop - start) // stride) if stride > 0 else -(-(start - stop) // -stride)
    return start, max(count, 0)


def lower_strided_slice(g: Graph, op: Operator) -> Step:
    """STRIDED_SLICE with constant begin/end/strides (masks, negative strides, shrink axes; up to 5-D)."""
    x, y = _io(g, op)
    o = op.options
    if o.get("ellipsis_mask", 0) or o.get("new_axis_mask", 0) or o.get("offset"):
        fail("ellipsis_mask, new_axis_mask and offset are not supported (TFLite-Micro does not prepare them)")
    begin, end, strides = ([int(v) for v in _const(g, op, k, what, "int32").data.reshape(-1)]
                           for k, what in ((1, "begin"), (2, "end"), (3, "strides")))
    rank = len(x.shape)
    if not len(begin) == len(end) == len(strides) == rank or rank > 5:
        fail(f"begin/end/strides of length {len(begin)} for a {rank}-D input (at most 5-D)")
    if 0 in strides:
        fail("a zero stride")
    istr = _row_major(list(x.shape))
    counts, steps, base = [], [], 0
    for d in range(rank):
        start, count = _slice_axis(begin[d], end[d], strides[d], x.shape[d], 1 << d, o)
        counts.append(count)
        steps.append(strides[d] * istr[d])
        base += start * istr[d]
    if int(np.prod(counts)) != y.size or y.size == 0:
        fail(f"the slice has {int(np.prod(counts))} elements, the output {list(y.shape)} {y.size}")
    want = [c for d, c in enumerate(counts) if not o.get("shrink_axis_mask", 0) & (1 << d)]
    if want != list(y.shape):   # TFLite-Micro's CheckOutputSize compares every dimension
        fail(f"output {list(y.shape)} is not the slice's shape {want} (shrunk axes dropped; TFLite-Micro checks it)")
    return _gather(op, counts, steps, base)


def _nearest(in_size: int, out_size: int, align: bool, half: bool) -> list[int]:
    """TFLite's GetNearestNeighbor for every output index (float32 arithmetic)."""
    scale = (np.float32(in_size - 1) / np.float32(out_size - 1) if align and out_size > 1
             else np.float32(in_size) / np.float32(out_size))
    offset = np.float32(0.5 if half else 0.0)
    out = []
    for i in range(out_size):
        v = (np.float32(i) + offset) * scale
        idx = min(qz.round_half_away(float(v)) if align else int(np.floor(v)), in_size - 1)
        out.append(max(0, idx) if half else idx)
    return out


def lower_resize_nearest(g: Graph, op: Operator) -> Step:
    """RESIZE_NEAREST_NEIGHBOR NHWC (align_corners, half_pixel_centers)."""
    x, y = _io(g, op)
    if len(x.shape) != 4 or len(y.shape) != 4:
        fail("input and output must be 4-D NHWC")
    size = [int(v) for v in _const(g, op, 1, "size", "int32").data.reshape(-1)]
    n, ih, iw, c = x.shape
    if size != [y.shape[1], y.shape[2]] or y.shape[0] != n or y.shape[3] != c:
        fail(f"size {size} does not match output {list(y.shape)}")
    align, half = bool(op.options.get("align_corners")), bool(op.options.get("half_pixel_centers"))
    fields = dict(batches=n, in_h=ih, in_w=iw, channels=c, out_h=size[0], out_w=size[1])
    arrays = {"y_map": np.array(_nearest(ih, size[0], align, half), np.int32),
              "x_map": np.array(_nearest(iw, size[1], align, half), np.int32)}
    return Step(op.index, op.op, "et_layout", "et_resize_nearest_s8", "et_resize_params", fields, arrays,
                (op.inputs[0],), op.outputs)


RULES: dict[str, Callable[[Graph, Operator], Step]] = {
    "MUL": lower_mul,
    "SUB": lower_sub,
    "MINIMUM": lower_minimum,
    "MAXIMUM": lower_maximum,
    "LOGISTIC": lower_logistic,
    "TANH": lower_tanh,
    "HARD_SWISH": lower_hard_swish,
    "LEAKY_RELU": lower_leaky_relu,
    "RELU": lower_relu,
    "RELU6": lower_relu6,
    "QUANTIZE": lower_quantize,
    "DEQUANTIZE": lower_dequantize,
    "TRANSPOSE": lower_transpose,
    "STRIDED_SLICE": lower_strided_slice,
    "RESIZE_NEAREST_NEIGHBOR": lower_resize_nearest,
}
SELF_CHECKED = frozenset({"QUANTIZE", "DEQUANTIZE"})  # rules that check their own operand types
