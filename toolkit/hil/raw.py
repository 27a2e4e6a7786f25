"""Raw samples in: a bundle with a C frontend profiled through the firmware's `rload` / `rrun` commands.

Each test window goes to the device as raw int16 samples; the device computes the features with the
frontend's C (the same files the host build compiled for training), then runs the network. The runner
compares the device features with the bundle's test_x_int8.npy (the training features) bit for bit and
the outputs with TFLite-Micro on the host C's features of the same raw windows, and times the frontend,
the network and both together, each figure with its source.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.hil import protocol as P
from toolkit.hil.bundle import Bundle
from toolkit.hil.checks import HOST_RAW
from toolkit.hil.transport import LinkClosedError

log = logging.getLogger(__name__)

TIMED_RUNS = 10  # raw inferences in the steady-state timing run
TRAINING = "test_x_int8.npy of the bundle (the training features: the host build of the same C)"


def host_features(bundle: Bundle, n: int) -> np.ndarray:
    """The host build of the bundle's frontend (regenerated from frontend.json) on its first n raw windows,
    in the layout of test_x_int8.npy."""
    from toolkit.frontends import frontend_from_info

    fe = frontend_from_info(bundle.frontend)
    if fe.info()["cache_key"] != bundle.frontend.get("cache_key"):
        raise EdgetkError(f"{bundle.path / 'frontend.json'} regenerates different C in this edgetk than the one "
                          "that computed the training features", fix="re-export the bundle with this edgetk")
    return fe.features(bundle.raw[:n]).reshape(bundle.x[:n].shape)


def check_firmware(info: P.DeviceInfo, bundle: Bundle) -> None:
    """Refuse a firmware whose frontend takes windows of another size than the bundle's."""
    want = int(bundle.raw[0].nbytes)
    if info.raw_size != want or info.input_size != int(bundle.x[0].nbytes):
        raise EdgetkError(f"the firmware's frontend takes {info.raw_size} raw bytes and gives {info.input_size}; "
                          f"the bundle's raw windows are {want} bytes and its features {bundle.x[0].nbytes}",
                          fix=f"rebuild the firmware from this bundle: edgetk flash {bundle.path} --target <target>")


def stage_timing(target: Any, r: P.RawRunResult, runs: int, tick_hz: int) -> dict[str, dict[str, Any]]:
    """frontend / network / end_to_end timing of an rrun reply, each figure labelled with its source."""
    st = target.stage_timing({"frontend": (r.frontend_ticks, r.frontend_cycles),
                              "network": (r.network_ticks, r.network_cycles)}, runs, tick_hz)
    e2e: dict[str, Any] = {"latency_ms": st["frontend"]["latency_ms"] + st["network"]["latency_ms"],
                           "latency_source": f"frontend + network ({st['network']['latency_source']})"}
    for key in ("instructions", "cycles"):
        if key in st["frontend"] and key in st["network"]:
            e2e[key] = st["frontend"][key] + st["network"][key]
            e2e[f"{key}_source"] = f"frontend + network ({st['network'][f'{key}_source']})"
    return {**st, "end_to_end": e2e}


def _row(i: int, r: P.RawRunResult, feat: np.ndarray, want: np.ndarray, timing: dict[str, dict[str, Any]]) -> dict:
    fe, net = timing["frontend"], timing["network"]
    row = {"features_crc": f"{r.features_crc:08x}", "features_match": bool(np.array_equal(feat, want)),
           "features_max_lsb_diff": int(np.abs(feat.astype(int) - want.astype(int)).max()),
           "raw_crc": f"{r.raw_crc:08x}", "frontend_ticks": r.frontend_ticks,
           "frontend_latency_ms": fe["latency_ms"], "ticks": r.network_ticks, **net,
           "end_to_end_latency_ms": timing["end_to_end"]["latency_ms"], "stack_bytes": r.stack_high_water}
    for key in ("instructions", "cycles"):
        if key in fe:
            row[f"frontend_{key}"] = fe[key]
            row[f"end_to_end_{key}"] = timing["end_to_end"].get(key)
    return row


def measure_raw(session: Any, bundle: Bundle, samples: int, log_rows: Any, info: P.DeviceInfo,
                base_row: Any) -> dict[str, Any]:
    """Upload each raw window, run frontend + network on the device, compare features and outputs, time them.

    Returns what `runner.measure` returns plus `features` (device), `host_features` and `pipeline` (steady
    timing per stage); a device that fails part way keeps what was measured and says so in `error`."""
    from toolkit.runtimes import run_tflm

    dut, target = session.dut, session.target
    check_firmware(info, bundle)
    host = host_features(bundle, samples)
    ref = run_tflm(bundle.tflite, host)
    m: dict[str, Any] = {"info": info, "rows": [], "outputs": [], "reference": ref, "steady": None, "mem": None,
                         "stack_run": 0, "error": None, "mlperf_answer": None, "features": [], "host_features": host,
                         "pipeline": None, "raw": True}
    timeout = session.policy.timeout_s * 6
    try:
        from toolkit.hil.runner import mlperf_answer

        m["mlperf_answer"] = mlperf_answer(dut)
        for i, ri in enumerate(bundle.raw[:samples]):
            dut.upload_raw(np.ascontiguousarray(ri, dtype="<i2").tobytes())
            r = dut.run_raw(1, 0, features_size=info.input_size, output_size=info.output_size, timeout=timeout)
            feat = np.frombuffer(r.features, np.int8).reshape(bundle.x[i].shape)
            out = np.frombuffer(r.output, np.int8).reshape(ref[i].shape)
            row = {**base_row(i, bundle, out, ref[i]), **_row(i, r, feat, bundle.x[i], stage_timing(target, r, 1, info.tick_hz))}
            log_rows.append(row)
            m["rows"].append(row)
            m["outputs"].append(out)
            m["features"].append(feat)
        r = dut.run_raw(TIMED_RUNS, 1, features_size=info.input_size, output_size=info.output_size,
                        timeout=timeout * TIMED_RUNS)
        m["pipeline"] = stage_timing(target, r, TIMED_RUNS, info.tick_hz)
        m.update(steady=m["pipeline"]["network"], mem=dut.mem(), stack_run=r.stack_high_water)
    except (P.DeviceError, P.LinkError, P.DeviceResetError, LinkClosedError) as e:
        m["error"] = f"after {len(m['outputs'])} of {samples} raw windows: {str(e).splitlines()[0]}"
        log.error("the device failed %s", m["error"])
    return m


def frontend_report(bundle: Bundle, m: dict[str, Any], device: str) -> dict[str, Any]:
    """The report's `frontend` block: device features vs the training features, window by window."""
    fe = bundle.frontend or {}
    base = {"type": fe.get("type"), "implementation": fe.get("implementation"), "reference": TRAINING,
            "device": device}
    if not m.get("raw"):
        return {**base, "ran": False, "why": m.get("raw_skipped") or "the raw path did not run"}
    dev = np.stack(m["features"]) if m["features"] else np.zeros((0, *bundle.x.shape[1:]), np.int8)
    want = bundle.x[:len(dev)]
    per = np.abs(dev.reshape(len(dev), -1).astype(int) - want.reshape(len(dev), -1)).max(axis=1) if len(dev) else \
        np.zeros(0, int)
    host = m["host_features"]
    return {**base, "ran": True, "windows": int(len(dev)), "equal": int((per == 0).sum()),
            "bit_exact": bool(len(dev) and (per == 0).all()), "max_lsb_diff": int(per.max(initial=0)),
            "first_differing": int(np.flatnonzero(per)[0]) if (per > 0).any() else None,
            "host_equal_training": bool(np.array_equal(host, bundle.x[:len(host)])),
            "host_windows": int(len(host))}


def pipeline_report(m: dict[str, Any]) -> dict[str, Any] | None:
    """Steady-state frontend / network / end-to-end figures per raw window (None when the timing run failed)."""
    p = m.get("pipeline")
    if not p:
        return None
    out = {}
    for stage, d in p.items():
        out[stage] = {"latency_ms": d["latency_ms"], "latency_source": d["latency_source"]}
        for key in ("instructions", "cycles"):
            if key in d:
                out[stage][key] = d[key]
                out[stage][f"{key}_source"] = d[f"{key}_source"]
        if d.get("instruction_classes"):
            out[stage]["instruction_classes"] = d["instruction_classes"]
    return out


def raw_accuracy(bundle: Bundle, device: np.ndarray | None, host: np.ndarray | None) -> dict[str, Any] | None:
    """Top-1 from raw input on the device and on the host (host C frontend + TFLite-Micro), same windows."""
    if device is None or host is None or bundle.y is None or bundle.kind == "anomaly" or not len(device):
        return None
    y = bundle.y[:len(device)]
    d = device.reshape(len(device), -1).argmax(1)
    h = host[:len(device)].reshape(len(device), -1).argmax(1)
    return {"metric": "top-1", "device": float(np.mean(d == y)), "host": float(np.mean(h == y)),
            "samples": int(len(device)), "same_predictions": int((d == h).sum()), "host_source": HOST_RAW,
            "labels": "test_y.npy of the bundle"}
