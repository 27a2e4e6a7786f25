"""TFLite flatbuffer reader: a .tflite file into a small, validated graph IR."""
from __future__ import annotations

from toolkit.tflite.ir import Graph, Operator, Quant, Tensor
from toolkit.tflite.reader import read_bytes, read_model

__all__ = ["Graph", "Operator", "Quant", "Tensor", "read_bytes", "read_model"]
