"""What a model file is, from its bytes: ONNX, float TFLite or int8 TFLite (pure functions, no heavy imports)."""
from __future__ import annotations

import os
from pathlib import Path

from toolkit.errors import EdgetkError

ONNX, TFLITE_FLOAT, TFLITE_INT8 = "onnx", "tflite-float", "tflite-int8"
_ONNX_FIRST_BYTE = 0x08  # ModelProto field 1 (ir_version, varint): every ONNX writer emits it first


def is_tflite(data: bytes) -> bool:
    """A TFLite flatbuffer carries the file identifier 'TFL3' at bytes 4..8."""
    return len(data) >= 8 and data[4:8] == b"TFL3"


def looks_like_onnx(data: bytes, name: str = "") -> bool:
    """An ONNX protobuf (by its first field) or a file named .onnx that is not a TFLite flatbuffer."""
    if is_tflite(data):
        return False
    return (len(data) > 0 and data[0] == _ONNX_FIRST_BYTE) or name.lower().endswith(".onnx")


def is_onnx_file(path: str | os.PathLike) -> bool:
    """A file named .onnx (and not a TFLite flatbuffer), or one whose bytes parse as an ONNX model with nodes."""
    p = Path(path)
    data = p.read_bytes()
    if not looks_like_onnx(data, p.name):
        return False
    if p.suffix.lower() == ".onnx":
        return True
    import onnx

    try:
        return len(onnx.load_from_string(data).graph.node) > 0
    except Exception:  # noqa: BLE001 - not a protobuf: not ONNX
        return False


def read_model_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a model file, or an error that names the path."""
    p = Path(path)
    if not p.is_file():
        raise EdgetkError(f"model not found: {p}", fix="pass a .onnx or .tflite file")
    data = p.read_bytes()
    if not data:
        raise EdgetkError(f"{p} is empty", fix="copy the model file again")
    return data


def model_format(data: bytes, name: str) -> str:
    """ONNX, TFLITE_FLOAT or TFLITE_INT8; a file that is neither gets one error."""
    if is_tflite(data):
        return _tflite_kind(data, name)
    if looks_like_onnx(data, name):
        return ONNX
    raise EdgetkError(f"{name} is neither an ONNX model nor a TFLite flatbuffer (first bytes {data[:8].hex()})",
                      fix="pass a .onnx file (an ONNX ModelProto) or a .tflite file (with the 'TFL3' identifier)")


def _tflite_kind(data: bytes, name: str) -> str:
    from toolkit.tflite import read_bytes

    g = read_bytes(data, name=name)
    dtype = g.tensor(g.inputs[0]).dtype if g.inputs else ""
    if dtype == "int8":
        return TFLITE_INT8
    if dtype == "float32":
        return TFLITE_FLOAT
    raise EdgetkError(f"{name}: the model input is {dtype or 'missing'}; edgetk imports float32 or int8 TFLite models",
                      fix="convert the model with a float32 or a full-int8 (int8 input and output) interface")
