"""The graph IR read from a .tflite file: tensors, operators and their options."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DTYPE_SIZES = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8, "float32": 4,
               "float16": 2, "float64": 8, "bool": 1, "uint16": 2, "uint32": 4, "uint64": 8}
# The builtin options table each operator edgetk knows reads (TFLite-Micro ignores options of another type and
# runs the operator with zeroed parameters).
OPTIONS_TYPES = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "ADD": "AddOptions", "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions", "MEAN": "ReducerOptions", "SOFTMAX": "SoftmaxOptions",
    "RESHAPE": "ReshapeOptions", "PAD": "PadOptions", "PADV2": "PadV2Options", "CONCATENATION": "ConcatenationOptions",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
    "MUL": "MulOptions", "SUB": "SubOptions", "MINIMUM": "MaximumMinimumOptions",
    "MAXIMUM": "MaximumMinimumOptions", "LEAKY_RELU": "LeakyReluOptions", "HARD_SWISH": "HardSwishOptions",
    "STRIDED_SLICE": "StridedSliceOptions", "TRANSPOSE": "TransposeOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions", "QUANTIZE": "QuantizeOptions",
    "DEQUANTIZE": "DequantizeOptions", "SQUEEZE": "SqueezeOptions", "EXPAND_DIMS": "ExpandDimsOptions",
}
# Inputs TFLite lets a file leave out (tensor index -1), per operator; for the operators listed, -1 anywhere
# else is refused. Operators not listed (custom ones, ops edgetk does not know) keep -1 inputs for their kernel.
_LSTM_OPTIONAL = frozenset({1, 5, 9, 10, 11, 12, 16, 17, 20, 21, 22, 23})
OPTIONAL_INPUTS: dict[str, frozenset[int]] = {op: frozenset() for op in (*OPTIONS_TYPES, "RELU", "RELU6", "LOGISTIC",
                                                                         "TANH")}
OPTIONAL_INPUTS.update({
    "CONV_2D": frozenset({2}), "DEPTHWISE_CONV_2D": frozenset({2}), "FULLY_CONNECTED": frozenset({2}),
    "TRANSPOSE_CONV": frozenset({3}), "CONV_3D": frozenset({2}), "SVDF": frozenset({3}),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _LSTM_OPTIONAL, "LSTM": _LSTM_OPTIONAL, "PADV2": frozenset({2}),
    "RESHAPE": frozenset({1}),
})
# The zero points a quantized tensor of each type can hold.
ZERO_POINT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
                     "int32": (-(1 << 31), (1 << 31) - 1)}


@dataclass(frozen=True)
class Quant:
    """Affine quantization: real = scale * (q - zero_point), per tensor or along `axis`."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        """True when there is more than one scale."""
        return len(self.scale) > 1


# Options the reader gives as enum names; an unknown value stays an int (TFLite-Micro refuses an unknown TensorType
# there; an unknown activation it runs as none, an unknown padding its kernels refuse)
ENUM_OPTIONS = {"padding": "Padding", "fused_activation_function": "ActivationFunctionType",
                "quantized_bias_type": "TensorType"}
REFUSED_UNKNOWN_ENUMS = ("quantized_bias_type",)


@dataclass(frozen=True)
class Tensor:
    """One tensor: constant when `data` is set."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None = None
    data: np.ndarray | None = field(default=None, repr=False, compare=False)
    variable: bool = False

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        """Size in bytes."""
        return self.size * DTYPE_SIZES.get(self.dtype, 1)

    @property
    def is_const(self) -> bool:
        """True for weights, biases and other constant tensors."""
        return self.data is not None


@dataclass(frozen=True)
class Operator:
    """One operator of the (first) subgraph; inputs of -1 are absent optional inputs."""

    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    options_type: str = ""      # the builtin options table's type ("" = none), e.g. "Conv2DOptions"
    intermediates: tuple[int, ...] = ()  # intermediate tensors (quantized LSTMs of some converters)


@dataclass(frozen=True)
class Graph:
    """A whole model: the main subgraph, its I/O and the number of subgraphs in the file."""

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    n_subgraphs: int = 1
    description: str = ""
    sha256: str = ""

    def tensor(self, i: int) -> Tensor:
        """The tensor at index i."""
        return self.tensors[i]

    def consumers(self, i: int) -> list[Operator]:
        """Operators that read tensor i."""
        return [op for op in self.operators if i in op.inputs]
