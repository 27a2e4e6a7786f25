"""Read a .tflite flatbuffer (via the object API shipped in ai-edge-litert) into the graph IR.

Every parse failure of a truncated or corrupted file becomes one EdgetkError.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.tflite.ir import (DTYPE_SIZES, ENUM_OPTIONS, OPTIONAL_INPUTS, ZERO_POINT_RANGES, Graph, Operator, Quant,
                               Tensor)

log = logging.getLogger(__name__)

_FIX = "re-export the model (edgetk export RUN_DIR) or copy the file again; check its sha256"
_ENUM_KEYS = ENUM_OPTIONS


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated as s
    return s


@functools.lru_cache(maxsize=None)
def _enum_names(cls: type) -> dict[int, str]:   # cached: built per read, it was 2.5 % of a fuzz campaign
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def read_model(path: str | os.PathLike) -> Graph:
    """Read and validate a .tflite file into a Graph."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EdgetkError(f"cannot read {path}: {e.strerror}", fix="check the path") from e
    return read_bytes(data, name=str(path))


def read_bytes(data: bytes, *, name: str = "<bytes>") -> Graph:
    """Parse and validate the bytes of a .tflite file into a Graph."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise EdgetkError(f"{name} is not a TFLite flatbuffer (no 'TFL3' identifier; "
                          f"{len(data)} bytes)", fix=_FIX)
    try:
        model = _schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
        graph = _to_graph(model, data)
    except EdgetkError as e:
        raise EdgetkError(f"{name} is corrupted: {e}", fix=_FIX) from None
    except Exception as e:  # noqa: BLE001 - any flatbuffer decoding failure means a bad file
        raise EdgetkError(f"{name} is truncated or corrupted (flatbuffer parse failed: "
                          f"{type(e).__name__}: {e})", fix=_FIX) from None
    return dataclasses.replace(graph, sha256=hashlib.sha256(data).hexdigest())


def _to_graph(model: Any, data: bytes) -> Graph:
    s = _schema()
    if not model.subgraphs:
        raise EdgetkError("the model has no subgraph")
    sg = model.subgraphs[0]
    ttypes = _enum_names(s.TensorType)
    opnames = _enum_names(s.BuiltinOperator)
    tensors = []
    for i, t in enumerate(sg.tensors or []):
        try:
            tensors.append(_tensor(i, t, model.buffers or [], data, ttypes))
        except EdgetkError as e:
            raise EdgetkError(f"{e}{_users(i, sg, model.operatorCodes or [], opnames)}") from None
    ops = tuple(_operator(i, op, model.operatorCodes or [], opnames, len(tensors))
                for i, op in enumerate(sg.operators or []))
    ins, outs = _indices(sg.inputs), _indices(sg.outputs)
    for what, idx in (("input", ins), ("output", outs)):
        for k, t in enumerate(idx):
            _check_index(t, len(tensors), f"subgraph {what} {k}")
    desc = model.description.decode("utf-8", "replace") if isinstance(model.description, bytes) else (model.description or "")
    return Graph(tensors, ops, ins, outs, n_subgraphs=len(model.subgraphs), description=desc)


def _users(i: int, sg: Any, codes: list, opnames: dict[int, str]) -> str:
    """' (operator 3 (CONV_2D) input 1, ...)': where a bad tensor is used, for the error message."""
    where = [f"subgraph {what} {k}" for what, idx in (("input", sg.inputs), ("output", sg.outputs))
             for k, t in enumerate(_indices(idx)) if t == i]
    for k, op in enumerate(sg.operators or []):
        oc = codes[op.opcodeIndex] if 0 <= op.opcodeIndex < len(codes) else None
        name = opnames.get(max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)), "?") if oc is not None else "?"
        where += [f"operator {k} ({name}) {what} {j}" for what, idx in (("input", op.inputs), ("output", op.outputs))
                  for j, t in enumerate(_indices(idx)) if t == i]
    return f" (used as {', '.join(where[:4])}{', ...' if len(where) > 4 else ''})" if where else " (unused)"


def _indices(v: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in v) if v is not None else ()


def _check_index(i: int, n: int, what: str, optional: bool = False) -> None:
    """A tensor index in range; -1 ("absent") only where the operand is optional."""
    if i == -1 and not optional:
        raise EdgetkError(f"{what} is tensor -1 (absent), but it is not optional (TFLite would read a missing tensor)")
    if not -1 <= i < n:
        raise EdgetkError(f"{what} refers to tensor {i}, but there are {n} tensors")


def _decode(name: Any) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or "")


def _tensor(i: int, t: Any, buffers: list, data: bytes, ttypes: dict[int, str]) -> Tensor:
    dtype = ttypes.get(t.type)
    if dtype is None:
        raise EdgetkError(f"tensor {i} has unknown type code {t.type}")
    dtype = dtype.lower()
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    if any(d < 0 for d in shape) and t.shapeSignature is None:
        raise EdgetkError(f"tensor {i} has a negative dimension {shape}")
    const = _buffer(i, t, buffers, data, dtype, shape)
    name = _decode(t.name)
    return Tensor(i, name, shape, dtype, _quant(t.quantization, f"tensor {i} ('{name}')", dtype, shape), const,
                  bool(t.isVariable))


def _buffer(i: int, t: Any, buffers: list, data: bytes, dtype: str, shape: tuple[int, ...]) -> np.ndarray | None:
    if not 0 <= t.buffer < max(len(buffers), 1):
        raise EdgetkError(f"tensor {i} refers to buffer {t.buffer}, but there are {len(buffers)} buffers")
    if not buffers:
        return None
    b = buffers[t.buffer]
    raw = _buffer_bytes(b, data)
    if raw is None or len(raw) == 0:
        return None
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    want = n * DTYPE_SIZES.get(dtype, 1)
    if len(raw) != want:
        raise EdgetkError(f"tensor {i} ({dtype} {list(shape)}) needs {want} bytes of data, its buffer "
                          f"has {len(raw)}")
    np_dtype = np.dtype(dtype if dtype != "bool" else "bool").newbyteorder("<")
    return np.frombuffer(bytes(raw), dtype=np_dtype).reshape(shape).copy()


def _buffer_bytes(b: Any, data: bytes) -> bytes | None:
    if b.offset and b.offset > 1:
        if b.offset + b.size > len(data):
            raise EdgetkError(f"a buffer at offset {b.offset} (+{b.size}) lies past the end of the file")
        return data[b.offset:b.offset + b.size]
    if b.data is None:
        return None
    return np.asarray(b.data, dtype=np.uint8).tobytes()


def _quant(q: Any, what: str, dtype: str, shape: tuple[int, ...]) -> Quant | None:
    """Quantization parameters as TFLite's ParseQuantization accepts them, plus finite non-negative scales,
    zero points the tensor type can hold and per-channel counts that match the quantized dimension."""
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scale = tuple(float(x) for x in np.asarray(q.scale, dtype=np.float32).reshape(-1))
    zps = np.asarray(q.zeroPoint if q.zeroPoint is not None else [], dtype=np.int64).reshape(-1)
    if len(zps) != len(scale):
        raise EdgetkError(f"{what} has {_n(len(scale), 'scale')} and {_n(len(zps), 'zero point')}; "
                          "TFLite needs one zero point per scale")
    bad = next((s for s in scale if not math.isfinite(s) or s < 0), None)
    if bad is not None:
        raise EdgetkError(f"{what} has quantization scale {bad}; scales must be finite and positive")
    lo, hi = ZERO_POINT_RANGES.get(dtype, (-(1 << 63), (1 << 63) - 1))
    zp = tuple(int(z) for z in zps)
    bad_zp = next((z for z in zp if not lo <= z <= hi), None)
    if bad_zp is not None:
        raise EdgetkError(f"{what} has zero point {bad_zp}, outside {dtype} [{lo}, {hi}]")
    axis = int(q.quantizedDimension)
    if len(scale) > 1 and not (0 <= axis < len(shape) and shape[axis] == len(scale)):
        dim = f"its dimension {axis} is {shape[axis]}" if 0 <= axis < len(shape) else f"it has {len(shape)} dimensions"
        raise EdgetkError(f"{what} has {len(scale)} scales along axis {axis}, but {dim}")
    return Quant(scale, zp, axis)


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _operator(i: int, op: Any, codes: list, opnames: dict[int, str], n_tensors: int) -> Operator:
    if not 0 <= op.opcodeIndex < len(codes):
        raise EdgetkError(f"operator {i} refers to opcode {op.opcodeIndex}, but there are {len(codes)}")
    oc = codes[op.opcodeIndex]
    code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
    name = opnames.get(code, f"UNKNOWN_{code}")
    if name == "CUSTOM":
        name = f"CUSTOM:{_decode(oc.customCode)}"
    ins, outs = _indices(op.inputs), _indices(op.outputs)
    optional = OPTIONAL_INPUTS.get(name)
    for k, t in enumerate(ins):
        _check_index(t, n_tensors, f"operator {i} ({name}) input {k}", optional=optional is None or k in optional)
    for k, t in enumerate(outs):
        _check_index(t, n_tensors, f"operator {i} ({name}) output {k}")
    mids = _indices(op.intermediates)
    for k, t in enumerate(mids):   # -1 passes TFLite's index check; codegen refuses it with its position
        _check_index(t, n_tensors, f"operator {i} ({name}) intermediate {k}", optional=True)
    return Operator(i, name, ins, outs, _options(op.builtinOptions), int(oc.version or 1),
                    _options_type(op.builtinOptionsType) if op.builtinOptions is not None else "", mids)


def _options_type(code: int) -> str:
    return _enum_names(_schema().BuiltinOptions).get(int(code), f"UNKNOWN_{code}")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _options(opts: Any) -> dict[str, Any]:
    if opts is None:
        return {}
    s = _schema()
    out: dict[str, Any] = {}
    for k, v in vars(opts).items():
        key = _snake(k)
        if key in _ENUM_KEYS:
            v = _enum_names(getattr(s, _ENUM_KEYS[key])).get(v, v)
        elif hasattr(v, "tolist"):
            v = v.tolist()
        out[key] = v
    return out
