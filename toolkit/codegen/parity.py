"""Parity of generated C against TFLite-Micro: reference inputs, host build, byte comparison.

Used by the tests, bench/codegen_memory.py and anyone checking a new kernel set.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.codegen import generate
from toolkit.codegen.host import compile_host, run_host
from toolkit.codegen.lower import lower
from toolkit.errors import EdgetkError
from toolkit.paths import external_model
from toolkit.tflite import Graph, read_model

log = logging.getLogger(__name__)

_MLPERF = "mlperf_tiny/benchmark/training"
EXTERNAL_MODELS: dict[str, str] = {
    "kws": f"{_MLPERF}/keyword_spotting/trained_models/kws_ref_model.tflite",
    "ic": f"{_MLPERF}/image_classification/trained_models/pretrainedResnet_quant.tflite",
    "ad": f"{_MLPERF}/anomaly_detection/trained_models/ad01_int8.tflite",
    "sww": f"{_MLPERF}/streaming_wakeword/trained_models/str_ww_ref_model.tflite",
    "hello_world": "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite",
}
_SHARED_INPUTS = {
    "kws": "mlperf_tiny/benchmark/reference_submissions/keyword_spotting/kws_input.npy",
    "ad": "mlperf_tiny/benchmark/reference_submissions/anomaly_detection/datasets/dcase01/"
          "normal_id_01_00000000_hist_librosa.bin",
}


@dataclass(frozen=True)
class Parity:
    """Outputs of the generated C and of TFLite-Micro on the same inputs."""

    ours: np.ndarray
    ref: np.ndarray

    @property
    def identical(self) -> int:
        """Number of inputs whose outputs are byte-identical."""
        return int((_bits(self.ours) == _bits(self.ref)).all(axis=1).sum())

    @property
    def max_diff(self) -> float:
        """Largest absolute difference (LSB for int8 outputs)."""
        if self.ours.dtype == np.float32:
            return float(np.abs(self.ours.astype(np.float64) - self.ref.astype(np.float64)).max(initial=0))
        return int(np.abs(self.ours.astype(np.int32) - self.ref.astype(np.int32)).max(initial=0))


def _bits(a: np.ndarray) -> np.ndarray:
    """Arrays compared by their bytes (float32 outputs: bit patterns, so NaN and -0 count too)."""
    return a.view(np.uint32) if a.dtype == np.float32 else a


def shared_inputs(name: str, graph: Graph) -> np.ndarray:
    """The real reference inputs shipped in shared/external for a model (may be empty)."""
    x = graph.tensor(graph.inputs[0])
    rel = _SHARED_INPUTS.get(name)
    if rel is None:
        return np.zeros((0,) + x.shape[1:], np.int8)
    path = external_model(rel)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False).astype(np.int8).reshape((-1,) + x.shape[1:])
    real = np.fromfile(path, dtype="<f4").reshape((-1,) + x.shape[1:])
    q = np.round(real / x.quant.scale[0]) + x.quant.zero_point[0]
    return np.clip(q, -128, 127).astype(np.int8)


def inputs_for(name: str, graph: Graph, n: int, *, seed: int = 0) -> np.ndarray:
    """n int8 inputs: the shared reference inputs first, then uniform random int8."""
    real = shared_inputs(name, graph)[:n]
    shape = graph.tensor(graph.inputs[0]).shape[1:]
    rand = np.random.default_rng(seed).integers(-128, 128, size=(n - len(real),) + shape, dtype=np.int8)
    return np.concatenate([real, rand]) if len(real) else rand


def build_runner(tflite: str | os.PathLike, work: str | os.PathLike, *, kernels: str = "reference",
                 sanitize: bool = False) -> Path:
    """Generate the library under work/ and compile the host runner; returns the executable."""
    work = Path(work)
    lib = work / f"lib-{kernels}"
    if not (lib / "edgetk_model.c").is_file():
        generate(tflite, lib, kernels=kernels)
    return compile_host(lib, work / f"run-{kernels}{'-san' if sanitize else ''}", sanitize=sanitize)


def run_tflm_flat(tflite: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """TFLite-Micro outputs as [N, output_size], every input from the initial state.

    TFLite-Micro keeps variable tensors (an LSTM's hidden and cell state) from one Invoke to the next;
    the interpreter is reset before each input, as every edgetk_invoke call starts from that state.
    Only a model the code generator validates runs in this process; any other goes through
    toolkit.runtimes.run_tflm (a child process: TFLite-Micro does not check malformed models).
    """
    from tflite_micro.python.tflite_micro import runtime

    graph = read_model(tflite)
    try:
        lower(graph)
    except EdgetkError:
        from toolkit.runtimes import run_tflm

        x_in = np.asarray(x).reshape((len(x),) + tuple(graph.tensor(graph.inputs[0]).shape[1:]))
        return run_tflm(tflite, x_in).reshape(len(x), -1) if len(x) else np.zeros((0, 0), np.int8)
    interp = runtime.Interpreter.from_bytes(Path(tflite).read_bytes(), arena_size=1 << 20)
    shape = tuple(interp.get_input_details(0)["shape"])
    outs = []
    for xi in x:
        interp.reset()
        interp.set_input(xi.reshape(shape), 0)
        interp.invoke()
        outs.append(interp.get_output(0).reshape(-1).copy())
    return np.stack(outs) if outs else np.zeros((0, 0), np.int8)


def check(tflite: str | os.PathLike, x: np.ndarray, work: str | os.PathLike, *,
          kernels: str = "reference", sanitize: bool = False, ref: np.ndarray | None = None) -> Parity:
    """Run x through generated C (host) and TFLite-Micro; ref may be passed to reuse TFLM outputs."""
    graph = read_model(tflite)
    exe = build_runner(tflite, work, kernels=kernels, sanitize=sanitize)
    y = graph.tensor(graph.outputs[0])
    ours = run_host(exe, x, y.size, timeout=600, dtype=np.float32 if y.dtype == "float32" else np.int8)
    ref = run_tflm_flat(tflite, x) if ref is None else ref
    if ours.shape != ref.shape:
        raise EdgetkError(f"output shapes differ: generated C {ours.shape}, TFLite-Micro {ref.shape}")
    return Parity(ours, ref)
