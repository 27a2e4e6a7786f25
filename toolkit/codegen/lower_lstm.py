"""Lowering of UNIDIRECTIONAL_SEQUENCE_LSTM (int8 activations, int16 cell state) as TFLite-Micro runs it.

TFLite-Micro's integer LSTM (lstm_eval_common.cc, PrepareGateParametersInteger): every gate is two
int8 -> int16 fully connected layers (input with bias, hidden state without) whose output scale is
2^-12; sigmoid/tanh map Q3.12 to Q0.15; the three element-wise products requantize from 2^-15 scales.
The hidden and cell state are variable tensors; the generated kernel starts them from their reset
values (hidden: its zero point, cell: 0) at every call, as TFLite-Micro after ResetVariableTensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from toolkit.codegen import quantize as qz
from toolkit.codegen.lower import Step, _acc_bounds, fail
from toolkit.tflite.ir import Graph, Operator, Tensor

# operand positions (TFLite lstm_shared.h)
INPUT, HIDDEN, CELL = 0, 18, 19
W_IN = {"input": 1, "forget": 2, "cell": 3, "output": 4}
W_REC = {"input": 5, "forget": 6, "cell": 7, "output": 8}
BIAS = {"input": 12, "forget": 13, "cell": 14, "output": 15}
PEEPHOLE, PROJECTION, LAYER_NORM = (9, 10, 11), (16, 17), (20, 21, 22, 23)
ORDER = ("forget", "input", "cell", "output")  # et_lstm.c gate order
GATE_SCALE, GATE_OUT_SCALE = 2.0 ** -12, 2.0 ** -15


def _opt(g: Graph, op: Operator, pos: int) -> Tensor | None:
    return g.tensor(op.inputs[pos]) if pos < len(op.inputs) and op.inputs[pos] >= 0 else None


def _need(g: Graph, op: Operator, pos: int, what: str, dtype: str, const: bool) -> Tensor:
    t = _opt(g, op, pos)
    if t is None:
        fail(f"its {what} (operand {pos}) is missing" + (" (CIFG LSTM)" if pos in (1, 5, 12) else ""))
    if t.dtype != dtype:
        fail(f"its {what} '{t.name}' is {t.dtype}; {dtype} is required")
    if const != t.is_const:
        fail(f"its {what} '{t.name}' {'is not' if const else 'is'} a constant")
    if t.quant is None or t.quant.per_channel:
        fail(f"its {what} '{t.name}' needs per-tensor quantization")
    return t


def _fc_multiplier(x: Tensor, w: Tensor) -> tuple[int, int]:
    if any(z != 0 for z in w.quant.zero_point):
        fail(f"weights '{w.name}' have a non-zero zero point")
    return qz.quantize_multiplier(float(x.quant.scale[0]) * float(w.quant.scale[0]) / GATE_SCALE)


def _cell_power(cell: Tensor) -> int:
    log2 = math.log2(cell.quant.scale[0])
    if abs(log2 - round(log2)) > 1e-3 or cell.quant.zero_point[0] != 0:
        fail(f"cell state '{cell.name}' must have a power-of-two scale and zero point 0 "
             f"(has {cell.quant.scale[0]}, {cell.quant.zero_point[0]})")
    return int(round(log2))


def _tanh_params(power: int) -> tuple[int, int]:
    """(multiplier, left shift) of TFLite's int16 Tanh on the cell state (multiplier 0 = 3 << shift)."""
    left = 15 + power - 3
    mult, shift = (3, -left) if left < 0 else (3 << left, 0)
    return mult, shift


@dataclass(frozen=True)
class _Lstm:
    """The validated operands of one LSTM (weights/biases in et_lstm.c's gate order)."""

    x: Tensor
    hidden: Tensor
    cell: Tensor
    w_in: list[Tensor]
    w_rec: list[Tensor]
    bias: list[Tensor]
    steps: int
    batches: int
    time_major: bool

    @property
    def n_in(self) -> int:
        return self.x.shape[2]

    @property
    def n_cell(self) -> int:
        return self.w_in[0].shape[0]


def _operands(g: Graph, op: Operator) -> _Lstm:
    for group, what in ((PEEPHOLE, "peephole"), (PROJECTION, "projection"), (LAYER_NORM, "layer norm")):
        if any(_opt(g, op, p) is not None for p in group):
            fail(f"{what} weights (TFLite-Micro's integer LSTM supports the standard LSTM only)")
    x = _need(g, op, INPUT, "input", "int8", const=False)
    hidden = _need(g, op, HIDDEN, "hidden state", "int8", const=False)
    cell = _need(g, op, CELL, "cell state", "int16", const=False)
    if not (hidden.variable and cell.variable):
        fail("its hidden and cell state must be variable tensors")
    if len(x.shape) != 3:
        fail(f"input {list(x.shape)} must be 3-D")
    if op.options.get("fused_activation_function", "TANH") != "TANH":
        fail(f"cell activation {op.options.get('fused_activation_function')} (TANH is supported)")
    time_major = bool(op.options.get("time_major", False))
    steps, batches = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    return _Lstm(x, hidden, cell, [_need(g, op, W_IN[k], f"{k} input weights", "int8", True) for k in ORDER],
                 [_need(g, op, W_REC[k], f"{k} recurrent weights", "int8", True) for k in ORDER],
                 [_need(g, op, BIAS[k], f"{k} gate bias", "int32", True) for k in ORDER], steps, batches, time_major)


def _check_shapes(m: _Lstm, y: Tensor) -> None:
    n = m.n_cell
    if any(w.shape != (n, m.n_in) for w in m.w_in) or any(w.shape != (n, n) for w in m.w_rec) or \
            any(b.size != n for b in m.bias) or m.hidden.size != m.batches * n or m.cell.size != m.batches * n:
        fail(f"weight/bias/state shapes do not fit input {list(m.x.shape)} and {n} cells")
    if y.dtype != "int8" or y.quant is None or y.shape != m.x.shape[:2] + (n,):
        fail(f"output '{y.name}' must be int8 {list(m.x.shape[:2] + (n,))}")


def _element_fields(m: _Lstm, cell_clip: float) -> dict[str, int]:
    """Multipliers of the three element-wise products, the cell tanh and the quantized clip."""
    cell_scale = m.cell.quant.scale[0]
    fm, fs = qz.quantize_multiplier(GATE_OUT_SCALE * cell_scale / cell_scale)
    im, is_ = qz.quantize_multiplier(GATE_OUT_SCALE * GATE_OUT_SCALE / cell_scale)
    hm, hs = qz.quantize_multiplier(GATE_OUT_SCALE * GATE_OUT_SCALE / float(m.hidden.quant.scale[0]))
    tm, ts = _tanh_params(_cell_power(m.cell))
    clip = float(np.float32(cell_clip))
    return dict(forget_mult=fm, forget_shift=fs, input_mult=im, input_shift=is_, hidden_mult=hm, hidden_shift=hs,
                tanh_mult=tm, tanh_shift=ts,
                cell_clip=int(min(max(clip / cell_scale, -32768.0), 32767.0)) if clip > 0 else 0)


def lower_lstm(g: Graph, op: Operator) -> Step:
    """UNIDIRECTIONAL_SEQUENCE_LSTM, int8 (standard LSTM: no CIFG, peephole, projection, layer norm)."""
    m = _operands(g, op)
    _check_shapes(m, g.tensor(op.outputs[0]))
    ins = [_fc_multiplier(m.x, w) for w in m.w_in]
    recs = [_fc_multiplier(m.hidden, w) for w in m.w_rec]
    for w_in, w_rec, bias in zip(m.w_in, m.w_rec, m.bias):   # each gate's two int32 accumulators (et_lstm.c fc16)
        _acc_bounds(np.abs(w_in.data.astype(np.int64)).sum(axis=1), bias.data.reshape(-1))
        _acc_bounds(np.abs(w_rec.data.astype(np.int64)).sum(axis=1), None)
    hz = m.hidden.quant.zero_point[0]
    fields = dict(batches=m.batches, steps=m.steps, n_input=m.n_in, n_cell=m.n_cell, time_major=int(m.time_major),
                  input_offset=-m.x.quant.zero_point[0], hidden_offset=-hz, hidden_zp=hz,
                  in_mult=[v for v, _ in ins], in_shift=[s for _, s in ins],
                  rec_mult=[v for v, _ in recs], rec_shift=[s for _, s in recs],
                  **_element_fields(m, op.options.get("cell_clip", 0.0)))
    arrays = {"w_in": np.concatenate([w.data.astype(np.int8).reshape(-1) for w in m.w_in]),
              "w_rec": np.concatenate([w.data.astype(np.int8).reshape(-1) for w in m.w_rec]),
              "bias": np.concatenate([b.data.astype(np.int32).reshape(-1) for b in m.bias])}
    macs = m.batches * m.steps * 4 * m.n_cell * (m.n_in + m.n_cell)
    return Step(op.index, op.op, "et_lstm", "et_lstm_s8", "et_lstm_params", fields, arrays, (op.inputs[0],),
                op.outputs, scratch=13 * m.n_cell + 16, macs=macs)  # ET_LSTM_SCRATCH in et_kernels.h
