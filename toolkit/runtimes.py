"""Reference runtimes every stage is checked against: ONNX Runtime, LiteRT, TFLite-Micro.

All are imported lazily; each function takes a model path and a batch of inputs already in the
model's dtype and layout, and returns the outputs stacked along a new leading axis.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)


# ONNX Runtime fuses DQ → op → Q into its integer kernels. With int8 activations it does so for every op only
# where int8 is "allowed": by default on ARM64; on x86 only for Q → DQ pairs it can turn into uint8, which
# excludes tensors read by several ops (residual connections), left in float (other rounding). This option
# makes x86 run the integer kernels everywhere, as ARM64 does by default.
INT8_KERNELS = {"session.qdqisint8allowed": "1"}


def onnx_session(model: str | os.PathLike | bytes, *, int8_kernels: bool = True) -> Any:
    """An ONNX Runtime CPU session (integer kernels for every QDQ op unless int8_kernels=False)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    for k, v in (INT8_KERNELS if int8_kernels else {}).items():
        opts.add_session_config_entry(k, v)
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                providers=["CPUExecutionProvider"])


def run_onnx(path: str | os.PathLike, x: np.ndarray, *, int8_kernels: bool = True) -> np.ndarray:
    """Run an ONNX model sample by sample (batch dimension 1) in ONNX Runtime on the CPU."""
    sess = onnx_session(path, int8_kernels=int8_kernels)
    name = sess.get_inputs()[0].name
    return np.stack([sess.run(None, {name: xi[None]})[0][0] for xi in x])


def _litert_interpreter_cls():
    try:
        from ai_edge_litert import interpreter as tfl  # maintained LiteRT
    except ImportError:  # old devices: the unmaintained tflite_runtime
        try:
            from tflite_runtime import interpreter as tfl  # type: ignore[no-redef]
        except ImportError as e:
            raise EdgetkError("no TFLite runtime installed", fix="pip install ai-edge-litert") from e
    return tfl


def run_litert(path: str | os.PathLike, x: np.ndarray, *, reference: bool = True) -> np.ndarray:
    """Run a .tflite model in LiteRT; reference=True uses the builtin reference kernels (TFLM-exact)."""
    tfl = _litert_interpreter_cls()
    kw = {"experimental_op_resolver_type": tfl.OpResolverType.BUILTIN_REF} if reference else {}
    interp = tfl.Interpreter(model_path=str(path), **kw)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for xi in x:
        interp.reset_all_variables()  # stateful ops (LSTM) start every sample from zero state, as edgetk_invoke does
        interp.set_tensor(inp["index"], xi[None].astype(inp["dtype"]))
        interp.invoke()
        outs.append(interp.get_tensor(out["index"])[0].copy())
    return np.stack(outs)


def run_tflm(path: str | os.PathLike, x: np.ndarray, *, arena_size: int = 1 << 20) -> np.ndarray:
    """Run a .tflite model in the TFLite-Micro reference interpreter (tflite-micro package)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(Path(path).read_bytes(), arena_size=arena_size)
    outs = []
    for xi in x:
        interp.reset()  # stateful ops (LSTM) start every sample from zero state, as edgetk_invoke does
        interp.set_input(xi[None], 0)
        interp.invoke()
        outs.append(interp.get_output(0)[0].copy())
    return np.stack(outs)


_ARENA_RE = re.compile(r"Arena allocation total (\d+) bytes")
_PROBE = (
    "import sys; from tflite_micro.python.tflite_micro import runtime as r;"
    "i = r.Interpreter.from_bytes(open(sys.argv[1], 'rb').read(), arena_size=int(sys.argv[2]));"
    "i.print_allocations()"
)


def tflm_arena_bytes(path: str | os.PathLike, *, arena_size: int = 1 << 21) -> int:
    """The arena TFLite-Micro allocates for a model, as its recording allocator prints it.

    Runs in a subprocess: TFLM prints from C to fd 2 and aborts the process on a failed allocation.
    """
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(arena_size)],
                          capture_output=True, text=True, timeout=120)
    m = _ARENA_RE.search(proc.stderr + proc.stdout)
    if proc.returncode != 0 or m is None:
        raise EdgetkError(f"TFLite-Micro could not allocate {path}: "
                          f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return int(m.group(1))
