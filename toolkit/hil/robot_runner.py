"""Runs one model on a Linux machine and prints one JSON line: outputs, latencies, peak RSS, the CPU's state.

Self-contained on purpose: it is copied to a robot (toolkit/hil/ssh.py) or run by this machine's Python
(toolkit/hil/linux_local.py) and needs only numpy and a runtime there (onnxruntime, or ai_edge_litert /
tflite_runtime / tensorflow for a .tflite), never edgetk. Usage: python3 robot_runner.py JOB.json, where JOB
names the runtime, the model and the inputs (.npy, loaded without pickles) and says how many warm-up runs to do.

Exit status: 0 with {"latency_ms": [...], ...}; 3 with {"error": "missing", "module": ...} when numpy or the
runtime cannot be imported; 4 with {"error": "failed", "detail": ...} when the runtime refused the model.
"""
import glob
import json
import os
import platform
import resource
import sys
import time


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cpu_state():
    """Temperatures (/sys/class/thermal), clocks (/sys/devices/system/cpu/cpufreq) and throttle counters where
    the kernel exposes them; each part absent when it cannot be read."""
    out = {}
    temps = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        t = _read(os.path.join(zone, "temp"))
        if t is not None and t.lstrip("-").isdigit():
            temps[f"{os.path.basename(zone)}:{_read(os.path.join(zone, 'type')) or '?'}"] = int(t) / 1000.0
    if temps:
        out["temperature_c"] = temps
    freqs = {}
    for pol in sorted(glob.glob("/sys/devices/system/cpu/cpufreq/policy*")):
        cur, top = _read(os.path.join(pol, "scaling_cur_freq")), _read(os.path.join(pol, "cpuinfo_max_freq"))
        if cur and cur.isdigit():
            freqs[os.path.basename(pol)] = {"cur_mhz": int(cur) / 1000.0,
                                            "max_mhz": int(top) / 1000.0 if top and top.isdigit() else None,
                                            "governor": _read(os.path.join(pol, "scaling_governor"))}
    if freqs:
        out["cpufreq"] = freqs
    throttle = {}
    for f in sorted(glob.glob("/sys/devices/system/cpu/cpu*/thermal_throttle/*_throttle_count")):
        v = _read(f)
        if v and v.isdigit():
            throttle[f.split("/")[-3] + "/" + os.path.basename(f)] = int(v)
    if throttle:
        out["throttle_count"] = throttle
    rpi = _read("/sys/devices/platform/soc/soc:firmware/get_throttled")  # Raspberry Pi firmware flags
    if rpi is not None:
        out["rpi_get_throttled"] = rpi
    return out


def _session(job):
    """A function from one input sample to its output, and the runtime's name and version."""
    runtime, model = job["runtime"], job["model"]
    if runtime == "onnxruntime":
        import onnxruntime as ort

        o = ort.SessionOptions()
        o.intra_op_num_threads = job.get("threads", 1)
        o.log_severity_level = 3
        for k, v in (job.get("session_config") or {}).items():
            o.add_session_config_entry(k, v)
        s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return (lambda xi: s.run(None, {name: xi[None]})[0][0]), f"onnxruntime {ort.__version__}"
    errors = []
    for mod in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"):
        try:
            tfl = __import__(mod, fromlist=["Interpreter"])
            break
        except ImportError as e:
            errors.append(str(e))
    else:
        raise ImportError("no LiteRT runtime (" + "; ".join(errors) + ")")
    it = tfl.Interpreter(model_path=model, num_threads=job.get("threads", 1))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]

    def f(xi):
        it.set_tensor(i["index"], xi[None])
        it.invoke()
        return it.get_tensor(o["index"])[0].copy()

    return f, mod.split(".")[0]


def run(job):
    """Warm up, then time each sample once; the JSON-able result."""
    import numpy as np

    x = np.load(job["inputs"], allow_pickle=False)
    state_before = cpu_state()
    f, runtime = _session(job)
    for _ in range(int(job.get("warmup", 5))):
        f(x[0])
    lat, outs = [], []
    for xi in x:
        t = time.perf_counter()
        y = f(xi)
        lat.append((time.perf_counter() - t) * 1e3)
        outs.append(np.asarray(y).tolist())
    return {"latency_ms": lat, "outputs": outs, "runtime": runtime,
            "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "machine": platform.machine(), "node": platform.node(), "python": platform.python_version(),
            "cpu_before": state_before, "cpu_after": cpu_state()}


def main(argv):
    with open(argv[1]) as f:
        job = json.load(f)
    try:
        res = run(job)
    except ImportError as e:
        print(json.dumps({"error": "missing", "module": getattr(e, "name", None) or str(e), "detail": str(e),
                          "python": sys.executable}))
        return 3
    except Exception as e:  # the runtime refused the model or the inputs: reported, not a traceback
        print(json.dumps({"error": "failed", "detail": f"{type(e).__name__}: {e}"[-800:]}))
        return 4
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
