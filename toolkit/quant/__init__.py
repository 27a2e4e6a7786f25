"""int8 quantization: PTQ into QDQ ONNX (NNCF, onnxruntime), QAT, and QDQ normalization for TFLite."""
from __future__ import annotations

from toolkit.quant.ptq import QUANTIZERS, calibration_set, load_onnx, quantize_onnx

__all__ = ["QUANTIZERS", "calibration_set", "load_onnx", "quantize_onnx"]
