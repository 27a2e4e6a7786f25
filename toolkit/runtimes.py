"""Reference runtimes every stage is checked against: ONNX Runtime, LiteRT, TFLite-Micro.

All are imported lazily; each function takes a model path and a batch of inputs already in the
model's dtype and layout, and returns the outputs stacked along a new leading axis.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
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
    """Run a .tflite model in LiteRT; reference=True uses the builtin reference kernels (TFLM-exact).

    The file is validated by edgetk's reader first (one EdgetkError for a malformed model)."""
    from toolkit.tflite import read_bytes

    read_bytes(Path(path).read_bytes(), name=str(path))
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


def run_tflm(path: str | os.PathLike, x: np.ndarray, *, arena_size: int = 1 << 20, reset: bool = True) -> np.ndarray:
    """Run a .tflite model in the TFLite-Micro reference interpreter (tflite-micro package).

    The model is read and validated by edgetk's reader first (one EdgetkError for a malformed file), then run in
    a child process: TFLite-Micro has no defence against malformed models (a SIGSEGV would kill the caller with no
    message), so a crash there becomes an EdgetkError too. reset=False carries variable tensors (an LSTM's state)
    from one input to the next, as TFLite-Micro does without Reset().
    """
    from toolkit.tflite import read_bytes

    data = Path(path).read_bytes()
    g = read_bytes(data, name=str(path))
    out_shape = g.tensor(g.outputs[0]).shape if g.outputs else ()
    x = np.asarray(x)
    if len(x) == 0:
        raise EdgetkError(f"no inputs to run {path} on", fix="pass at least one input")
    with tempfile.TemporaryDirectory(prefix="edgetk-tflm-") as tmp:
        np.save(Path(tmp) / "x.npy", x[:, None], allow_pickle=False)
        _tflm_child(path, [_RUN, str(path), str(Path(tmp) / "x.npy"), str(Path(tmp) / "y.npy"), str(arena_size),
                           "1" if reset else "0"], timeout=3600)
        y = np.load(Path(tmp) / "y.npy", allow_pickle=False)
        # each sample's output without a batch dimension of 1 (a first dimension of another size is data)
        return y[:, 0] if y.ndim > 1 and out_shape[:1] == (1,) else y


_RUN = (
    "import sys; import numpy as np; from tflite_micro.python.tflite_micro import runtime as r\n"
    "model, xs, ys, arena, reset = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == '1'\n"
    "i = r.Interpreter.from_bytes(open(model, 'rb').read(), arena_size=arena)\n"
    "shape = tuple(i.get_input_details(0)['shape'])\n"
    "outs = []\n"
    "for xi in np.load(xs, allow_pickle=False):\n"
    "    if reset:\n"
    "        i.reset()\n"
    "    i.set_input(xi.reshape(shape) if xi.size == int(np.prod(shape)) else xi, 0)\n"
    "    i.invoke()\n"
    "    outs.append(np.array(i.get_output(0), copy=True))\n"
    "np.save(ys, np.stack(outs), allow_pickle=False)\n"
)


def _tflm_child(path: str | os.PathLike, code_args: list[str], *, timeout: float,
                check: bool = True) -> subprocess.CompletedProcess:
    """Run TFLite-Micro code in a child Python; a crash (signal) is one EdgetkError, so is an error exit if check."""
    from toolkit.proc import child_kwargs

    proc = subprocess.run([sys.executable, "-c", *code_args], capture_output=True, text=True, timeout=timeout,
                          **child_kwargs(signal.SIGKILL))
    if proc.returncode < 0:
        sig = -proc.returncode
        name = signal.Signals(sig).name if sig in signal.valid_signals() else f"signal {sig}"
        raise EdgetkError(f"TFLite-Micro crashed ({name}) on {path}: the model is malformed in a way it does not check",
                          fix="check the file with `edgetk inspect` and `edgetk codegen`; re-export or re-convert it")
    if check and proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise EdgetkError(f"TFLite-Micro could not run {path}: {last[0]}",
                          fix="check the file with `edgetk inspect`; re-export or re-convert it")
    return proc


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
    proc = _tflm_child(path, [_PROBE, str(path), str(arena_size)], timeout=120, check=False)
    m = _ARENA_RE.search(proc.stderr + proc.stdout)
    if proc.returncode != 0 or m is None:
        raise EdgetkError(f"TFLite-Micro could not allocate {path}: "
                          f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return int(m.group(1))
