"""A minimal TFLite flatbuffer writer on the object API that ships in ai-edge-litert."""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

# Op versions as the TFLite converter writes them for int8 (TFLM ignores versions).
OP_VERSIONS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4, "ADD": 2,
               "AVERAGE_POOL_2D": 2, "MAX_POOL_2D": 2, "MEAN": 2, "RESHAPE": 1, "SOFTMAX": 2,
               "PAD": 2, "CONCATENATION": 2, "RELU": 2, "RELU6": 2}
_DTYPES = {np.dtype(np.int8): "INT8", np.dtype(np.int32): "INT32", np.dtype(np.float32): "FLOAT32"}


def schema() -> Any:
    """The flatbuffer schema module of ai-edge-litert (object API: ModelT, TensorT, ...)."""
    from ai_edge_litert import schema_py_generated as s

    return s


class TFLiteBuilder:
    """Accumulates tensors, constant buffers and operators of one subgraph, then packs the model."""

    def __init__(self) -> None:
        self.s = schema()
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [self.s.BufferT()]  # buffer 0: the empty sentinel
        self.operators: list[Any] = []
        self.opcodes: dict[str, int] = {}

    def tensor(self, name: str, shape: Sequence[int], dtype: Any, *, data: np.ndarray | None = None,
               scale: Any = None, zero_point: Any = None, quantized_dimension: int = 0) -> int:
        """Add a tensor (a constant when `data` is given); returns its index."""
        s = self.s
        t = s.TensorT()
        t.name, t.shape = name, [int(d) for d in shape]
        t.type = getattr(s.TensorType, _DTYPES[np.dtype(dtype)])
        t.buffer = 0
        if data is not None:
            buf = s.BufferT()
            buf.data = np.ascontiguousarray(data, dtype=dtype).reshape(-1).view(np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(scale)]
            q.zeroPoint = [int(v) for v in np.atleast_1d(zero_point)]
            q.quantizedDimension = quantized_dimension
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name: str, inputs: Sequence[int], outputs: Sequence[int], options: Any = None,
           options_name: str | None = None) -> None:
        """Append an operator of builtin `name` (e.g. "CONV_2D") with its options object."""
        s = self.s
        self.opcodes.setdefault(name, len(self.opcodes))
        o = s.OperatorT()
        o.opcodeIndex = self.opcodes[name]
        o.inputs, o.outputs = [int(i) for i in inputs], [int(i) for i in outputs]
        if options is not None:
            o.builtinOptionsType = getattr(s.BuiltinOptions, options_name or type(options).__name__[:-1])
            o.builtinOptions = options
        self.operators.append(o)

    def options(self, kind: str, **fields: Any) -> Any:
        """A builtin options object, e.g. options("Conv2DOptions", padding=..., strideW=1)."""
        obj = getattr(self.s, f"{kind}T")()
        for k, v in fields.items():
            setattr(obj, k, v)
        return obj

    def finish(self, inputs: Sequence[int], outputs: Sequence[int], description: str = "edgetk") -> bytes:
        """Pack the model into flatbuffer bytes with the TFL3 identifier."""
        import flatbuffers

        s = self.s
        sg = s.SubGraphT()
        sg.tensors, sg.operators, sg.name = self.tensors, self.operators, "main"
        sg.inputs, sg.outputs = list(inputs), list(outputs)
        m = s.ModelT()
        m.version, m.description, m.subgraphs, m.buffers = 3, description, [sg], self.buffers
        codes = sorted(self.opcodes.items(), key=lambda kv: kv[1])
        m.operatorCodes = [self._code(name) for name, _ in codes]
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    def _code(self, name: str) -> Any:
        code = self.s.OperatorCodeT()
        code.builtinCode = getattr(self.s.BuiltinOperator, name)
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
        code.version = OP_VERSIONS.get(name, 1)
        return code
