"""Per-model figures of a graph IR: op counts, parameters, MACs (pure functions)."""
from __future__ import annotations

from collections import Counter
from typing import Any

from toolkit.tflite.ir import Graph, Operator, Tensor


def op_macs(g: Graph, op: Operator) -> int:
    """Multiply-accumulates of one operator (conv, depthwise, FC; 0 for pools and data movement)."""
    if not op.outputs or op.outputs[0] < 0:
        return 0
    out = g.tensor(op.outputs[0])
    w = g.tensor(op.inputs[1]) if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
    if op.op == "CONV_2D" and w is not None and len(w.shape) == 4:
        return out.size * w.shape[1] * w.shape[2] * w.shape[3]
    if op.op == "DEPTHWISE_CONV_2D" and w is not None and len(w.shape) == 4:
        return out.size * w.shape[1] * w.shape[2]
    if op.op == "FULLY_CONNECTED" and w is not None and len(w.shape) == 2:
        return out.size * w.shape[1]
    if op.op == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        return lstm_macs(g, op)
    return 0


# UNIDIRECTIONAL_SEQUENCE_LSTM operands (TFLite lstm_shared.h): 1-4 input weights, 5-8 recurrent weights,
# 9-11 peephole, 12-15 gate biases, 16-17 projection, 18-19 state (variables), 20-23 layer norm.
_LSTM_MATRICES, _LSTM_PEEPHOLE, _LSTM_PROJECTION = range(1, 9), range(9, 12), 16


def lstm_macs(g: Graph, op: Operator) -> int:
    """MACs of one LSTM invocation: per time step and batch row, every gate matrix (input and
    recurrent; CIFG has 3 of each), peephole vectors and the projection, times steps x batches."""
    def t(pos: int) -> Tensor | None:
        return g.tensor(op.inputs[pos]) if pos < len(op.inputs) and op.inputs[pos] >= 0 else None

    x = t(0)
    if x is None or len(x.shape) != 3:
        return 0
    per_step = sum(w.size for w in (t(p) for p in _LSTM_MATRICES) if w is not None)
    per_step += sum(w.size for w in (t(p) for p in _LSTM_PEEPHOLE) if w is not None)
    proj = t(_LSTM_PROJECTION)
    per_step += proj.size if proj is not None else 0
    return x.shape[0] * x.shape[1] * per_step  # time steps x batches, either layout


def _is_param(t: Tensor, g: Graph) -> bool:
    """Weights and biases: constants read as operand 1 or 2 of an operator with weights, or any
    constant operand of a recurrent operator (an LSTM's 8 gate matrices, biases, peephole, projection)."""
    for op in g.operators:
        if op.op in _RECURRENT and t.index in op.inputs[1:]:
            return True
        if op.op in _WEIGHTED and t.index in op.inputs[1:3]:
            return True
    return False


_RECURRENT = {"UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
              "BIDIRECTIONAL_SEQUENCE_RNN", "LSTM", "RNN", "SVDF"}


_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
             "UNIDIRECTIONAL_SEQUENCE_LSTM", "BATCH_MATMUL"}


def io_dict(t: Tensor) -> dict[str, Any]:
    """Name, shape, dtype and quantization of an I/O tensor."""
    q = t.quant
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
            "scale": list(q.scale) if q else None, "zero_point": list(q.zero_point) if q else None}


def summary(g: Graph) -> dict[str, Any]:
    """Inputs, outputs, op counts, parameter count, MACs and constant bytes of a graph."""
    consts = [t for t in g.tensors if t.is_const]
    return {
        "inputs": [io_dict(g.tensor(i)) for i in g.inputs],
        "outputs": [io_dict(g.tensor(i)) for i in g.outputs],
        "ops": dict(Counter(op.op for op in g.operators)),
        "n_ops": len(g.operators),
        "params": sum(t.size for t in consts if _is_param(t, g)),
        "macs": sum(op_macs(g, op) for op in g.operators),
        "const_bytes": sum(t.nbytes for t in consts),
        "subgraphs": g.n_subgraphs,
        "sha256": g.sha256,
    }
