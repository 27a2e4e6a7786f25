"""Build small int8 TFLite models with the flatbuffer object API (kernel checks, tests, examples).

A model is a list of TensorSpec and a list of OpSpec; tensors with `data` become constants.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.tflite.ir import ENUM_OPTIONS, OPTIONS_TYPES

_NP = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "float32": np.float32, "uint8": np.uint8}


@dataclass(frozen=True)
class TensorSpec:
    """A tensor: shape, dtype, quantization (per-tensor or per-channel along axis), optional data."""

    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: tuple[float, ...] | None = (1.0,)
    zero_point: tuple[int, ...] | None = None
    axis: int = 0
    data: np.ndarray | None = field(default=None, repr=False)
    name: str = ""
    variable: bool = False    # state that persists between invocations (an LSTM's hidden and cell state)


@dataclass(frozen=True)
class OpSpec:
    """An operator: builtin name, tensor indices and options (snake_case keys)."""

    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


def _camel(k: str) -> str:
    return re.sub(r"_(\w)", lambda m: m.group(1).upper(), k)


def _options(s: Any, op: str, opts: dict[str, Any]) -> tuple[int, Any]:
    name = OPTIONS_TYPES.get(op)
    if name is None:
        return 0, None
    obj = getattr(s, f"{name}T")()
    for k, v in opts.items():
        if k in ENUM_OPTIONS and isinstance(v, str):
            v = getattr(getattr(s, ENUM_OPTIONS[k]), v)
        setattr(obj, _camel(k), v)
    return getattr(s.BuiltinOptions, name), obj


def _tensor(s: Any, i: int, t: TensorSpec, buffer: int) -> Any:
    tt = s.TensorT()
    tt.shape = list(t.shape)
    tt.type = getattr(s.TensorType, t.dtype.upper())
    tt.name = t.name or f"t{i}"
    tt.buffer = buffer
    tt.isVariable = t.variable
    if t.scale is not None:
        q = s.QuantizationParametersT()
        q.scale = [float(x) for x in t.scale]
        q.zeroPoint = list(t.zero_point if t.zero_point is not None else [0] * len(t.scale))
        q.quantizedDimension = t.axis
        tt.quantization = q
    return tt


def build_model(tensors: list[TensorSpec], ops: list[OpSpec], inputs: list[int],
                outputs: list[int], *, description: str = "edgetk test model") -> bytes:
    """Serialize a single-subgraph model to .tflite bytes."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT()
    m.version = 3
    m.description = description
    empty = s.BufferT()
    m.buffers = [empty]
    sg = s.SubGraphT()
    sg.tensors = []
    for i, t in enumerate(tensors):
        buf = 0
        if t.data is not None:
            b = s.BufferT()
            b.data = np.ascontiguousarray(t.data, dtype=_NP[t.dtype]).view(np.uint8).reshape(-1).tolist()
            m.buffers.append(b)
            buf = len(m.buffers) - 1
        sg.tensors.append(_tensor(s, i, t, buf))
    codes: list[str] = []
    sg.operators = []
    for o in ops:
        if o.op not in codes:
            codes.append(o.op)
        ot = s.OperatorT()
        ot.opcodeIndex = codes.index(o.op)
        ot.inputs, ot.outputs = list(o.inputs), list(o.outputs)
        ot.builtinOptionsType, ot.builtinOptions = _options(s, o.op, o.options)
        sg.operators.append(ot)
    sg.inputs, sg.outputs = list(inputs), list(outputs)
    m.subgraphs = [sg]
    m.operatorCodes = []
    for c in codes:
        oc = s.OperatorCodeT()
        code = getattr(s.BuiltinOperator, c)
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        m.operatorCodes.append(oc)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
