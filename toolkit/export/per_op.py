"""ONNX int8 ↔ TFLite, layer by layer: each QDQ op fed TFLite's own int8 inputs (per op), and both runtimes
run end to end side by side (per tensor: where differences appear and how they grow).

Both files hold the same int8 weights and int32 biases; a requantization (int32 accumulator ×
input·weight/output scale) is rounded once by ONNX Runtime and twice by TFLite's kernels. With dyadic
requantization (toolkit.quant.dyadic, the default) both give the same integers, so every count here is
zero; with free scales a value near a rounding boundary lands 1 LSB apart, and end to end those
differences feed the next layers and compound. A wrong lowering shows up as more than 1 LSB per op.
ONNX Runtime runs with its integer kernels for every op (toolkit.runtimes.onnx_session).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from toolkit.quant.graph import OnnxGraph

log = logging.getLogger(__name__)

ORT_MODE = "ONNX Runtime on the CPU, integer kernels for every QDQ op (session.qdqisint8allowed=1)"


def _to_onnx_layout(v: np.ndarray, act: Any) -> np.ndarray:
    if act.as_4d:
        return v.reshape(act.onnx_shape)
    return v.transpose(0, 3, 1, 2) if len(act.onnx_shape) == 4 else v


def _compared(proto: Any, tensors: dict[str, Any]) -> list[Any]:
    """The activation QuantizeLinear nodes (graph order) whose tensor TFLite holds in the same layout."""
    model_in = OnnxGraph(proto).inputs[0]
    return [q for q in proto.graph.node if q.op_type == "QuantizeLinear" and q.input[0] != model_in
            and q.input[0] in tensors and tensors[q.input[0]].flat_from is None]


def _cut_model(proto: Any, tensors: dict[str, Any]) -> tuple[Any, list[Any]]:
    """A copy whose activation DQs read graph inputs (fed from TFLite) instead of their Q nodes."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    g = OnnxGraph(m)
    cut = _compared(m, tensors)
    del m.graph.output[:]
    for q in cut:
        feed = f"{q.output[0]}__tflite"
        m.graph.input.append(helper.make_tensor_value_info(feed, TensorProto.INT8, list(tensors[q.input[0]].onnx_shape)))
        for c in g.consumers[q.output[0]]:
            if c.op_type == "DequantizeLinear":
                c.input[0] = feed
        m.graph.output.append(helper.make_tensor_value_info(q.output[0], TensorProto.INT8, None))
    del m.graph.value_info[:]
    return m, cut


def _all_layers_model(proto: Any, layers: list[Any]) -> Any:
    """A copy (unchanged graph) that also outputs every compared Q node's int8 result."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    known = {o.name for o in m.graph.output}
    m.graph.output.extend(helper.make_tensor_value_info(q.output[0], TensorProto.INT8, None)
                          for q in layers if q.output[0] not in known)
    del m.graph.value_info[:]
    return m


def _session(model: Any) -> Any:
    from toolkit.runtimes import onnx_session

    return onnx_session(model.SerializeToString())


class _Growth:
    """Counts of end-to-end differences (0, 1, 2, ≥3 LSB) of one tensor over all samples."""

    def __init__(self) -> None:
        self.counts = np.zeros(4, np.int64)
        self.max = 0

    def add(self, d: np.ndarray) -> None:
        self.counts += np.bincount(np.minimum(d.ravel(), 3), minlength=4)
        self.max = max(self.max, int(d.max(initial=0)))

    def record(self, tensor: str) -> dict[str, Any]:
        c = self.counts
        return {"tensor": tensor, "values": int(c.sum()), "lsb1": int(c[1]), "lsb2": int(c[2]),
                "lsb3_plus": int(c[3]), "max_lsb_diff": self.max}


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int32) - b.astype(np.int32))


def per_op_diff(proto: Any, tflite_path: Any, tensors: dict[str, Any], x_int8: np.ndarray,
                x_float: np.ndarray) -> dict[str, Any]:
    """Max LSB difference of every quantized op output when both runtimes see TFLite's int8 inputs, and
    (`end_to_end`, graph order) how far each of those tensors differs when both run the whole model."""
    from toolkit.runtimes import _litert_interpreter_cls

    tfl = _litert_interpreter_cls()
    interp = tfl.Interpreter(model_path=str(tflite_path), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=tfl.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    m, cut = _cut_model(proto, tensors)
    sess, whole = _session(m), _session(_all_layers_model(proto, cut))
    worst: dict[str, int] = {q.input[0]: 0 for q in cut}
    growth = {q.input[0]: _Growth() for q in cut}
    names = [q.output[0] for q in cut]
    in_idx, in_name = interp.get_input_details()[0]["index"], m.graph.input[0].name
    for xi, xf in zip(x_int8, x_float):
        interp.set_tensor(in_idx, xi[None])
        interp.invoke()
        lite = {q.input[0]: _to_onnx_layout(interp.get_tensor(tensors[q.input[0]].index), tensors[q.input[0]])
                for q in cut}
        feeds = {in_name: xf[None]} | {f"{q.output[0]}__tflite": lite[q.input[0]] for q in cut}
        for q, out in zip(cut, sess.run(names, feeds)):
            worst[q.input[0]] = max(worst[q.input[0]], int(_abs_diff(out, lite[q.input[0]]).max()))
        for q, out in zip(cut, whole.run(names, {in_name: xf[None]})):
            growth[q.input[0]].add(_abs_diff(out, lite[q.input[0]]))
    return {"ops_compared": len(cut), "max_lsb_diff": max(worst.values(), default=0), "per_tensor": worst,
            "n": int(len(x_int8)), "onnxruntime": ORT_MODE,
            "end_to_end": [growth[q.input[0]].record(q.input[0]) for q in cut]}
