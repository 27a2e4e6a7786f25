"""Per-op fidelity: every int8 ONNX QDQ op fed the exact int8 inputs TFLite computed, compared op by op.

End-to-end differences compound (TFLite double-rounds each requantization, ONNX Runtime rounds once);
this check isolates each lowered op, so a wrong lowering shows up as more than 1 LSB at its own output.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from toolkit.quant.graph import OnnxGraph

log = logging.getLogger(__name__)


def _to_onnx_layout(v: np.ndarray, act: Any) -> np.ndarray:
    if act.as_4d:
        return v.reshape(act.onnx_shape)
    return v.transpose(0, 3, 1, 2) if len(act.onnx_shape) == 4 else v


def _cut_model(proto: Any, tensors: dict[str, Any]) -> tuple[Any, list[Any]]:
    """A copy whose activation DQs read graph inputs (fed from TFLite) instead of their Q nodes."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    g = OnnxGraph(m)
    model_in = g.inputs[0]
    cut = [q for q in m.graph.node if q.op_type == "QuantizeLinear" and q.input[0] != model_in
           and q.input[0] in tensors and tensors[q.input[0]].flat_from is None]
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


def per_op_diff(proto: Any, tflite_path: Any, tensors: dict[str, Any], x_int8: np.ndarray,
                x_float: np.ndarray) -> dict[str, Any]:
    """Max LSB difference of every quantized op output when both runtimes see TFLite's int8 inputs."""
    import onnxruntime as ort

    from toolkit.runtimes import _litert_interpreter_cls

    tfl = _litert_interpreter_cls()
    interp = tfl.Interpreter(model_path=str(tflite_path), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=tfl.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    m, cut = _cut_model(proto, tensors)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    worst: dict[str, int] = {q.input[0]: 0 for q in cut}
    in_idx, in_name = interp.get_input_details()[0]["index"], m.graph.input[0].name
    for xi, xf in zip(x_int8, x_float):
        interp.set_tensor(in_idx, xi[None])
        interp.invoke()
        lite = {q.input[0]: _to_onnx_layout(interp.get_tensor(tensors[q.input[0]].index), tensors[q.input[0]])
                for q in cut}
        feeds = {in_name: xf[None]} | {f"{q.output[0]}__tflite": lite[q.input[0]] for q in cut}
        for q, out in zip(cut, sess.run([q.output[0] for q in cut], feeds)):
            d = int(np.abs(out.astype(np.int32) - lite[q.input[0]].astype(np.int32)).max())
            worst[q.input[0]] = max(worst[q.input[0]], d)
    return {"ops_compared": len(cut), "max_lsb_diff": max(worst.values(), default=0), "per_tensor": worst,
            "n": int(len(x_int8))}
