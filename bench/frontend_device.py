"""Bench: the frontend on the device — raw samples in, frontend + network on an emulated Cortex-M4, per window.

For kws-digits (MFCC 49x10 over 1 s of 8 kHz FSDD audio) and imu-motions (BasicMotions, 100 x 6 int16 counts),
each trained through its fixed-point C frontend and exported with its C:
  - `edgetk validate BUNDLE --target qemu-m4 --samples all`: the firmware receives every raw test window
    (`rload`), computes the features with the frontend's C and runs the network (`rrun`); reported: device
    features == training features (test_x_int8.npy) on how many windows, device top-1 from raw vs host top-1
    from raw (host C frontend + TFLite-Micro), frontend / network / end-to-end instructions per window;
  - the baseline measured in the same run on the same core (QEMU mps2-an386, the same -O2 hard-float flags):
    the float reference of the same frontend in C (MFCC: toolkit/native/baseline, radix-2 FFT, FPv4-SP, newlib
    logf — bench/frontend.py's baseline; IMU: float (x - mean) / std / scale, rounded to int8), on the first
    windows; and, for MFCC, the streaming entry point's instructions per 160-sample hop.
Instructions are counted exactly by the project's TCG plugin between marker calls: "instructions (QEMU)", not
cycles. QEMU's emulated UART takes about 16 kB/s, so the 300 MFCC windows (16 kB each) take ~5 minutes.
Run: .venv/bin/python bench/frontend_device.py [--quick] [--kws-windows N] [--baseline-windows N]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TASKS = {  # task -> (overrides of the demo-length recipe, --quick overrides)
    "kws-digits": (['frontend.type="mfcc"'], ['frontend.type="mfcc"', "train.epochs=4", "model.width=0.25"]),
    "imu-motions": (['frontend.type="imu"'], ['frontend.type="imu"', "train.epochs=15"]),
}


def train_export(task: str, overrides: list[str], work: Path) -> tuple[Path, float]:
    """Train the task through its frontend, export with C; returns the bundle and the run's test top-1."""
    from toolkit.export import export_run
    from toolkit.paths import repo_dir
    from toolkit.recipe import load_recipe
    from toolkit.train import train

    run = train(load_recipe(repo_dir("models") / f"{task}.toml", overrides), work / task / "run")
    top1 = json.loads((run / "metrics.json").read_text())["value"]
    return export_run(run, work / task / "bundle", formats=("onnx", "tflite", "c")), top1


def on_device(bundle: Path, windows: int | None, out: Path) -> dict:
    """edgetk validate on qemu-m4 from raw samples; returns report.json (exit code under 'rc', summary under 'text')."""
    import contextlib
    import io

    from toolkit.cli import main

    args = ["validate", str(bundle), "--target", "qemu-m4", "--samples", "all" if windows is None else str(windows),
            "-o", str(out)]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(args)
    rep = json.loads((out / "report.json").read_text())
    rep.update(rc=rc, text=buf.getvalue())
    return rep


def imu_float_c(fe, info: dict) -> tuple[str, str]:
    """(declarations, main body) of the float IMU baseline: q = round((x - mean[c]) / std[c] / scale), saturated."""
    norm = info["normalization"]
    t, c = fe.feature_shape
    mean = ", ".join(f"{float(v)!r}f" for v in norm["mean"])
    inv = ", ".join(f"{1.0 / (float(s) * fe.cfg.input_scale)!r}f" for s in norm["std"])
    decl = "\n".join([
        f"static const float k_mean[{c}] = {{{mean}}};", f"static const float k_inv[{c}] = {{{inv}}};",
        f"static int8_t g_fq[{t * c}];",
        "static void float_imu(const int16_t *raw, int8_t *q)", "{", "    int32_t i;",
        f"    for (i = 0; i < {t * c}; i++) {{",
        f"        float v = ((float)raw[i] - k_mean[i % {c}]) * k_inv[i % {c}];",
        "        v = v > 127.0f ? 127.0f : (v < -128.0f ? -128.0f : v);",
        "        q[i] = (int8_t)(v >= 0.0f ? v + 0.5f : v - 0.5f);", "    }", "}"])
    return decl, "\n".join(["    for (i = 0; i < NWIN; i++) {", "        edgetk_mark_start();",
                            "        float_imu(k_raw + i * EDGETK_RAW_SIZE, g_fq);", "        edgetk_mark_stop();",
                            '        etb_hex("F", g_fq, sizeof g_fq);', "    }"])


def mfcc_float_c(fe, work: Path) -> tuple[str, str, list[Path], list[Path]]:
    """(declarations, main body, extra sources, include dirs) of bench/frontend.py's float MFCC baseline."""
    from frontend import float_tables_c

    from toolkit.fsio import atomic_write_text

    cfg = fe.cfg
    base = ROOT / "toolkit" / "native" / "baseline"
    tables = atomic_write_text(work / "float_tables.c", float_tables_c(cfg))
    decl = "\n".join(['#include "etf_float_mfcc.h"', "extern const etf_float_mfcc_params g_fparams;",
                      f"static float g_fout[{cfg.n_frames * cfg.n_mfcc}];",
                      f"static float g_fwork[{cfg.n_fft + cfg.n_fft // 2 + 1 + cfg.n_mels}];"])
    body = "\n".join(["    for (i = 0; i < NWIN; i++) {", "        edgetk_mark_start();",
                      "        etf_float_mfcc(&g_fparams, k_raw + i * EDGETK_RAW_SIZE, g_fout, g_fwork);",
                      "        edgetk_mark_stop();", "    }"])
    return decl, body, [base / "etf_float_mfcc.c", tables], [base]


def baseline(bundle: Path, windows: int, work: Path) -> dict:
    """The frontend's C (harness program) and the float baseline on the same core, same windows, same run."""
    from toolkit.frontends import frontend_from_info
    from toolkit.frontends.device import run_on_m4

    info = json.loads((bundle / "frontend.json").read_text())
    fe = frontend_from_info(info)
    raw = np.load(bundle / "test_raw_int16.npy", allow_pickle=False)[:windows]
    if fe.cfg.type == "imu":
        decl, body = imu_float_c(fe, info)
        src, inc = [], []
    else:
        decl, body, src, inc = mfcc_float_c(fe, work)
    m = run_on_m4(fe, raw, work / "m4", extra_sources=tuple(src), extra_includes=tuple(inc),
                  extra_decl=f"#define NWIN {len(raw)}\n{decl}", extra_main=body)
    out = {"fixed": float(np.mean(m.insn_window)), "float": float(np.mean(m.extra_counts[:len(raw)])),
           "windows": len(raw), "harness_equal_host": bool(np.array_equal(m.q, fe.features(raw)))}
    if fe.cfg.type == "imu":
        lines = [ln[2:] for ln in m.stdout.splitlines() if ln.startswith("F ")]
        fq = np.stack([np.frombuffer(bytes.fromhex(h), np.int8) for h in lines]).reshape(m.q.shape)
        out["float_vs_fixed_max_lsb"] = int(np.abs(fq.astype(int) - m.q).max())
    if m.stream is not None:
        out["hop"] = float(np.mean([h[1:] for h in m.insn_hops]))  # hop 0 only buffers
        out["stream_equal"] = bool(np.array_equal(m.stream, m.q))
    return out


def report(task: str, top1: float, rep: dict, base: dict, wall: float) -> bool:
    """Print one task's figures; True when the device features equal the training features on every window."""
    fe, pipe, racc = rep["frontend"], rep.get("pipeline") or {}, rep.get("raw_accuracy") or {}
    ok = rep["rc"] == 0 and fe.get("bit_exact", False)
    print(f"\n{task} ({fe['type']} frontend), QEMU mps2-an386 Cortex-M4, {rep['samples']} raw test windows "
          f"({wall:.0f} s wall)")
    said = [ln for ln in rep["text"].splitlines() if ln.startswith("features") or ln.startswith("validate:")]
    print(f"  edgetk validate exit {rep['rc']}: " + "; ".join(said))
    if racc:
        print(f"  top-1 from raw: device {racc['device']:.4f}, host {racc['host']:.4f} (same prediction on "
              f"{racc['same_predictions']}/{racc['samples']}); training run's recorded test top-1 {top1:.4f}")
    if pipe:
        f, n, e = (pipe[k]["instructions"] for k in ("frontend", "network", "end_to_end"))
        print("  instructions per window (QEMU TCG plugin, exact; not cycles):")
        print(f"    frontend (edgetk fixed-point C)   {f:12,.0f}   ({f / e:.1%} of end to end)")
        print(f"    network (generated C)             {n:12,.0f}")
        print(f"    end to end (raw -> output)        {e:12,.0f}")
    print(f"  baseline, same core, same run, first {base['windows']} windows (harness program):")
    print(f"    edgetk fixed-point frontend       {base['fixed']:12,.0f}   (host == device bits: {base['harness_equal_host']})")
    print(f"    float reference in C (FPv4-SP)    {base['float']:12,.0f}   ratio float / fixed {base['float'] / base['fixed']:.2f}x")
    if pipe:
        e_float = base["float"] + pipe["network"]["instructions"]
        print(f"    end to end with the float frontend {e_float:11,.0f}   ratio {e_float / pipe['end_to_end']['instructions']:.2f}x")
    if "float_vs_fixed_max_lsb" in base:
        print(f"    float baseline vs fixed-point features: max {base['float_vs_fixed_max_lsb']} LSB apart")
    if "hop" in base:
        print(f"    streaming: {base['hop']:,.0f} instructions per 160-sample hop ({base['hop'] / base['fixed']:.1%} of a "
              f"whole-window recompute; rows == window: {base['stream_equal']})")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny training runs (kws width 0.25, 4 epochs)")
    ap.add_argument("--kws-windows", type=int, default=None, help="kws raw windows on the device (default: all 300)")
    ap.add_argument("--baseline-windows", type=int, default=5, help="windows for the baseline program (default 5)")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks")
    args = ap.parse_args()
    from toolkit.paths import shared_dir

    work = Path(tempfile.mkdtemp(prefix="edgetk-bench-frontend-device-"))
    ok = True
    for task in args.tasks.split(","):
        if task == "kws-digits" and not (shared_dir() / "data" / "fsdd").is_dir():
            print(f"{task}: skipped, FSDD not found under {shared_dir()} (set EDGETK_SHARED)")
            continue
        bundle, top1 = train_export(task, TASKS[task][1 if args.quick else 0], work)
        t0 = time.monotonic()
        rep = on_device(bundle, args.kws_windows if task == "kws-digits" else None, work / task / "validate")
        wall = time.monotonic() - t0
        ok &= report(task, top1, rep, baseline(bundle, args.baseline_windows, work / task), wall)
    print(f"\nwork folder: {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
