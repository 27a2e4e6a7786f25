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
    return 0


def _is_param(t: Tensor, g: Graph) -> bool:
    """Weights and biases: constants read as operand 1 or 2 of an operator with weights."""
    return any(t.index in op.inputs[1:3] and op.op in _WEIGHTED for op in g.operators)


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
