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

#: the runner script (self-contained: numpy + a runtime), run here in a fresh interpreter so peak RSS is the
#: runtime's own, and copied to robots by toolkit/hil/ssh.py
RUNNER = Path(__file__).with_name("robot_runner.py")


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


def write_job(spec: TargetSpec, bundle: Bundle, out_dir: Path, samples: int, *, model_dir: str | None = None,
              input_dir: str | None = None) -> tuple[Path, Path, Path, dict[str, Any]]:
    """The model file, the inputs (.npy) and the runner's job file in out_dir; the job names the model and the
    inputs under model_dir / input_dir when they run elsewhere (a robot's temp folder)."""
    model, x = _inputs(spec, bundle, samples)
    xs = out_dir / "linux_inputs.npy"
    np.save(xs, x)
    cfg = bundle.manifest.get("onnxruntime_session_config") or {}  # how the bundle's ONNX file is meant to run
    job = {"runtime": spec.runtime, "warmup": 5, "threads": 1, "session_config": cfg,
           "model": f"{model_dir}/{model.name}" if model_dir else str(model),
           "inputs": f"{input_dir}/{xs.name}" if input_dir else str(xs)}
    path = out_dir / "linux_job.json"
    path.write_text(json.dumps(job))
    return model, xs, path, job


def runner_failure(res: dict[str, Any], spec: TargetSpec, where: str, install: str) -> EdgetkError:
    """The runner's own error line (a module missing, the runtime refusing the model) as one EdgetkError."""
    if res.get("error") == "missing":
        return EdgetkError(f"{where}: {res.get('detail') or res.get('module')} (python {res.get('python')})",
                           fix=f"install numpy and the {spec.runtime} runtime there: {install}")
    return EdgetkError(f"{spec.runtime} failed {where}: {res.get('detail')}",
                       fix="check the runtime's version against the bundle (edgetk doctor on this machine)")


PIP = {"onnxruntime": "python3 -m pip install numpy onnxruntime",
       "litert": "python3 -m pip install numpy ai-edge-litert (or tflite-runtime)"}


def linux_report(spec: TargetSpec, bundle: Bundle, res: dict[str, Any], model: Path, samples: int, label: str,
                 rss_source: str, job: dict[str, Any]) -> dict[str, Any]:
    """The profile report of a runner result: latency percentiles, peak RSS, outputs vs TFLite-Micro."""
    from toolkit.runtimes import run_tflm

    lat = res["latency_ms"]
    ref = run_tflm(bundle.tflite, bundle.x[:samples]).reshape(len(lat), -1).astype(np.float32)
    outs = np.asarray(res["outputs"], dtype=np.float32).reshape(len(lat), -1)
    if spec.runtime == "onnxruntime":  # float output of the QDQ graph, requantized to the TFLite output
        q = bundle.io("output")
        outs = np.clip(np.round(outs / float(q.get("scale", 1.0))) + int(q.get("zero_point", 0)), -128, 127)
    fid = agreement(outs, ref)
    if job["session_config"] and spec.runtime == "onnxruntime":
        label += f", session config {job['session_config']}"
    return {"ran_on": spec.name, "model": {"sha256": bundle.sha256, "macs": bundle.macs, "kind": bundle.kind,
                                           "file": str(model)},
            "latency": {"per_inference_ms": float(np.median(lat)), "median_ms": float(np.median(lat)),
                        "p90_ms": float(np.percentile(lat, 90)), "p99_ms": float(np.percentile(lat, 99)),
                        "samples_ms": lat, "source": label},
            "memory": {"peak_rss_bytes": int(res["peak_rss_kb"]) * 1024, "source": {"peak RSS": rss_source}},
            "fidelity": {**fid, "reference": "TFLite-Micro reference kernels on the int8 .tflite"}, "link": {},
            "_outputs": outs.astype(np.int8), "_reference": ref.astype(np.int8)}  # scored by the runner


def profile_linux_local(spec: TargetSpec, bundle: Bundle, out_dir: Path, *, samples: int) -> dict[str, Any]:
    """Latency median/p90/p99 and peak RSS of the runtime in a subprocess, outputs vs TFLite-Micro."""
    model, _, job_file, job = write_job(spec, bundle, out_dir, samples)
    proc = subprocess.run([sys.executable, str(RUNNER), str(job_file)], capture_output=True, text=True, timeout=600)
    lines = proc.stdout.strip().splitlines()
    res = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if proc.returncode != 0:
        if "error" in res:
            raise runner_failure(res, spec, f"on {model}", PIP[spec.runtime])
        raise EdgetkError(f"{spec.runtime} failed on {model}: {proc.stderr.strip()[-800:]}",
                          fix="check the runtime install (edgetk doctor)")
    label = f"{spec.runtime} on this machine ({platform.machine()}, 1 thread), wall clock in a subprocess"
    return linux_report(spec, bundle, res, model, samples, label,
                        "getrusage(RUSAGE_SELF).ru_maxrss of the subprocess", job)
