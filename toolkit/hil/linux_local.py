"""linux-local: the model on this machine's CPU (ONNX Runtime or LiteRT), measured in a subprocess."""
from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.hil.bundle import Bundle
from toolkit.hil.fidelity import agreement
from toolkit.targets import TargetSpec

# Runs in a fresh interpreter so peak RSS is the runtime's own, not this process's.
_SCRIPT = r"""
import json, resource, sys, time
import numpy as np
runtime, model, xs, warm, cfg = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])
x = np.load(xs)
if runtime == "onnxruntime":
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.log_severity_level = 3
    for k, v in cfg.items(): o.add_session_config_entry(k, v)
    s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    f = lambda xi: s.run(None, {name: xi[None]})[0][0]
else:
    from ai_edge_litert import interpreter as tfl
    it = tfl.Interpreter(model_path=model, num_threads=1); it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    def f(xi):
        it.set_tensor(i["index"], xi[None]); it.invoke(); return it.get_tensor(o["index"])[0].copy()
for _ in range(warm): f(x[0])
lat, outs = [], []
for xi in x:
    t = time.perf_counter(); y = f(xi); lat.append((time.perf_counter() - t) * 1e3); outs.append(np.asarray(y).tolist())
print(json.dumps({"latency_ms": lat, "outputs": outs, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _inputs(spec: TargetSpec, bundle: Bundle, samples: int) -> tuple[Path, np.ndarray]:
    x = bundle.x[:samples]
    if spec.runtime == "litert":
        return bundle.tflite, x
    onnx = bundle.path / "model_int8.onnx"
    if not onnx.is_file():
        raise EdgetkError(f"{onnx} missing", fix="export with ONNX: edgetk export RUN_DIR --formats onnx,tflite")
    q = bundle.io("input")
    scale, zp = float(q.get("scale", 1.0)), int(q.get("zero_point", 0))
    xf = ((x.astype(np.float32) - zp) * scale)
    if xf.ndim == 4 and q.get("layout", "NHWC") == "NHWC":  # ONNX takes NCHW, the int8 inputs are NHWC
        xf = xf.transpose(0, 3, 1, 2)
    return onnx, np.ascontiguousarray(xf)


def profile_linux_local(spec: TargetSpec, bundle: Bundle, out_dir: Path, *, samples: int) -> dict[str, Any]:
    """Latency median/p90/p99 and peak RSS of the runtime in a subprocess, outputs vs TFLite-Micro."""
    from toolkit.runtimes import run_tflm

    model, x = _inputs(spec, bundle, samples)
    xs = out_dir / "linux_local_inputs.npy"
    np.save(xs, x)
    cfg = bundle.manifest.get("onnxruntime_session_config") or {}  # how the bundle's ONNX file is meant to run
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, spec.runtime, str(model), str(xs), "5", json.dumps(cfg)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise EdgetkError(f"{spec.runtime} failed on {model}: {proc.stderr.strip()[-800:]}",
                          fix="check the runtime install (edgetk doctor)")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    lat = res["latency_ms"]
    ref = run_tflm(bundle.tflite, bundle.x[:samples]).reshape(len(lat), -1).astype(np.float32)
    outs = np.asarray(res["outputs"], dtype=np.float32).reshape(len(lat), -1)
    if spec.runtime == "onnxruntime":  # float output of the QDQ graph, requantized to the TFLite output
        q = bundle.io("output")
        outs = np.clip(np.round(outs / float(q.get("scale", 1.0))) + int(q.get("zero_point", 0)), -128, 127)
    fid = agreement(outs, ref)
    label = f"{spec.runtime} on this machine ({platform.machine()}, 1 thread), wall clock in a subprocess"
    if cfg and spec.runtime == "onnxruntime":
        label += f", session config {cfg}"
    return {"ran_on": spec.name, "model": {"sha256": bundle.sha256, "macs": bundle.macs, "kind": bundle.kind,
                                           "file": str(model)},
            "latency": {"per_inference_ms": float(np.median(lat)), "median_ms": float(np.median(lat)),
                        "p90_ms": float(np.percentile(lat, 90)), "p99_ms": float(np.percentile(lat, 99)),
                        "samples_ms": lat, "source": label},
            "memory": {"peak_rss_bytes": int(res["peak_rss_kb"]) * 1024,
                       "source": {"peak RSS": "getrusage(RUSAGE_SELF).ru_maxrss of the subprocess"}},
            "fidelity": {**fid, "reference": "TFLite-Micro reference kernels on the int8 .tflite"}, "link": {},
            "_outputs": outs.astype(np.int8), "_reference": ref.astype(np.int8)}  # scored by the runner
