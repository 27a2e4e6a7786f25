"""Bench: instructions per 1 s window of the fixed-point MFCC frontend (49x10, 8 kHz) on an emulated Cortex-M4.

QEMU mps2-an386 runs one bare-metal program (toolkit/native/m4.py) that computes, on the same FSDD clips:
  - the edgetk frontend (generated C, DSP-instruction path) per window, per hop (streaming), stage 1 only;
  - the baseline measured in the same run: a straightforward float MFCC in C with the same parameters
    (toolkit/native/baseline: radix-2 FFT, single-precision FPU, newlib logf), -mfloat-abi=hard -mfpu=fpv4-sp-d16;
  - the network on the frontend's int8 features: MLPerf Tiny's kws_ref_model (DS-CNN, input 49x10 int8) as
    edgetk generated C.
Instructions are counted exactly by the project's TCG plugin between marker calls: "instructions (QEMU)",
not cycles. Goal (issue 12): MFCC 49x10 over 1 s of 8 kHz audio <= 1.5 M instructions on M4.
Run: .venv/bin/python bench/frontend.py [--clips N]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL = 1_500_000


def fsdd(folder: Path, test: bool, n: int) -> np.ndarray:
    """FSDD clips as int16 [n, 8000], zero-padded at the end (test: recording index 0-4)."""
    wavs = [p for p in sorted(folder.glob("*_*_*.wav")) if (int(p.stem.split("_")[2]) < 5) == test]
    wavs = wavs[:: max(1, len(wavs) // n)][:n]
    out = np.zeros((len(wavs), 8000), np.int16)
    for i, p in enumerate(wavs):
        with wave.open(str(p), "rb") as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        out[i, :min(8000, len(pcm))] = pcm[:8000]
    return out


def float_tables_c(cfg) -> str:
    """etf_float_mfcc_params g_fparams with the float tables of the same parameters (toolkit/data/mfcc.py)."""
    from toolkit.data.mfcc import MfccConfig, dct_matrix, mel_filterbank

    n = cfg.n_fft // 2
    mc = MfccConfig(n_fft=cfg.n_fft, n_mels=cfg.n_mels, n_mfcc=cfg.n_mfcc, fmin=cfg.fmin, fmax=cfg.fmax_hz)
    fb = mel_filterbank(mc)
    starts, lens, weights = [], [], []
    for row in fb:
        nz = np.flatnonzero(row)
        starts.append(int(nz[0]))
        lens.append(int(nz[-1] - nz[0] + 1))
        weights += row[nz[0]:nz[-1] + 1].tolist()
    bits = int(np.log2(n))
    bitrev = [int(f"{i:0{bits}b}"[::-1], 2) for i in range(n)]
    k = np.arange(n // 2)
    tw = np.stack([np.cos(2 * np.pi * k / n), -np.sin(2 * np.pi * k / n)], 1).reshape(-1)
    ks = np.arange(n + 1)
    split = np.stack([np.cos(np.pi * ks / n), -np.sin(np.pi * ks / n)], 1).reshape(-1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.frame_len) / cfg.frame_len)

    def arr(ctype: str, name: str, vals) -> str:
        body = ", ".join(f"{v!r}f" if ctype == "float" else str(int(v)) for v in vals)
        return f"static const {ctype} {name}[{len(vals)}] = {{{body}}};\n"

    return "".join([
        '#include "etf_float_mfcc.h"\n', arr("float", "k_window", window.tolist()), arr("float", "k_tw", tw.tolist()),
        arr("uint16_t", "k_bitrev", bitrev), arr("float", "k_split", split.tolist()),
        arr("int16_t", "k_fb_start", starts), arr("int16_t", "k_fb_len", lens), arr("float", "k_fb_w", weights),
        arr("float", "k_dct", dct_matrix(cfg.n_mels, cfg.n_mfcc).reshape(-1).tolist()),
        "const etf_float_mfcc_params g_fparams = {", f"{cfg.frame_len}, {cfg.hop}, {cfg.n_frames}, {cfg.n_fft}, ",
        f"{cfg.n_mels}, {cfg.n_mfcc}, k_window, k_tw, k_bitrev, k_split, k_fb_start, k_fb_len, k_fb_w, k_dct, ",
        f"{cfg.log_floor!r}f}};\n"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=5, help="FSDD test clips to measure (default 5)")
    args = ap.parse_args()

    from toolkit.codegen import generate
    from toolkit.fsio import atomic_write_text
    from toolkit.frontends import FrontendConfig, apply_frontend
    from toolkit.frontends.audio import float_reference
    from toolkit.frontends.device import run_on_m4
    from toolkit.paths import shared_dir

    folder = shared_dir() / "data" / "fsdd" / "recordings"
    kws = shared_dir() / "external" / "mlperf_tiny" / "benchmark" / "training" / "keyword_spotting" / "trained_models" / \
        "kws_ref_model.tflite"
    if not folder.is_dir():
        print(f"bench/frontend.py: skipped, FSDD not found under {folder} (set EDGETK_SHARED)")
        return 0
    cfg = FrontendConfig(type="mfcc")
    raw = fsdd(folder, True, args.clips)
    res = apply_frontend(cfg, fsdd(folder, False, 300), raw)
    fe = res.frontend
    work = Path(tempfile.mkdtemp(prefix="edgetk-bench-frontend-"))
    base = ROOT / "toolkit" / "native" / "baseline"
    tables = atomic_write_text(work / "float_tables.c", float_tables_c(cfg))
    extra_src, extra_inc = [base / "etf_float_mfcc.c", tables], [base]
    decl = ["#include \"etf_float_mfcc.h\"", "extern const etf_float_mfcc_params g_fparams;",
            f"static float g_fout[{cfg.n_frames * cfg.n_mfcc}];",
            f"static float g_fwork[{cfg.n_fft + cfg.n_fft // 2 + 1 + cfg.n_mels}];"]
    body = [f"    for (i = 0; i < {len(raw)}; i++) {{", "        edgetk_mark_start();",
            "        etf_float_mfcc(&g_fparams, k_raw + i * EDGETK_RAW_SIZE, g_fout, g_fwork);", "        edgetk_mark_stop();",
            '        etb_hex("F", g_fout, sizeof g_fout);', "    }"]
    if kws.is_file():
        lib = work / "kws"
        generate(kws, lib)
        extra_src += [lib / "edgetk_model.c", *sorted((lib / "kernels").glob("*.c"))]
        extra_inc += [lib, lib / "kernels"]
        decl += ['#include "edgetk_model.h"', "static int8_t g_net_out[EDGETK_OUTPUT_SIZE];"]
        body += ["    edgetk_mark_start();", "    rc |= edgetk_invoke(g_q, g_net_out);", "    edgetk_mark_stop();"]
    m = run_on_m4(fe, raw, work / "m4", extra_sources=tuple(extra_src), extra_includes=tuple(extra_inc),
                  extra_decl="\n".join(decl), extra_main="\n".join(body))
    portable = run_on_m4(fe, raw, work / "m4-portable", stream=False, extra_flags=("-DETF_PORTABLE",))
    n = len(raw)
    floats = np.stack([np.frombuffer(bytes.fromhex(h), "<f4") for h in m.stdout.splitlines()
                       if h.startswith("F ") for h in [h[2:]]]).reshape(n, cfg.n_frames, cfg.n_mfcc)
    float_insn, net = m.extra_counts[:n], m.extra_counts[n:]
    ref = float_reference(cfg, raw)
    same = bool(np.array_equal(m.q, fe.features(raw)) and np.array_equal(m.stage1, fe.stage1(raw))
                and np.array_equal(m.stream, m.q) and np.array_equal(portable.q, m.q)
                and np.array_equal(portable.stage1, m.stage1))
    fixed = float(np.mean(m.insn_window))
    hops = np.array([h[1:] for h in m.insn_hops], dtype=np.float64)  # hop 0 only buffers
    state = 2 * cfg.frame_len + 4
    fx_err = np.abs(m.stage1 / 2.0 ** fe.frac_bits - ref)
    print(f"MFCC {cfg.n_frames}x{cfg.n_mfcc} over 1 s of 8 kHz audio, Cortex-M4 (QEMU mps2-an386), {n} FSDD test clips;")
    print("figures are instructions (QEMU TCG plugin, exact count), not cycles")
    print(f"  edgetk fixed-point C (DSP path)   {fixed:12,.0f} instructions/window  (min {min(m.insn_window):,}, "
          f"max {max(m.insn_window):,}); stage 1 alone {np.mean(m.insn_stage1):,.0f}")
    print(f"  the same C without DSP paths      {np.mean(portable.insn_window):12,.0f} instructions/window  "
          "(-DETF_PORTABLE: the host's portable C, compiled for M4)")
    print(f"  float C baseline, same run        {np.mean(float_insn):12,.0f} instructions/window  (radix-2 FFT, "
          f"FPv4-SP, newlib logf)")
    print(f"  ratio baseline / fixed-point      {np.mean(float_insn) / fixed:12.2f}x")
    print(f"  goal <= {GOAL:,}: {'met' if max(m.insn_window) <= GOAL else 'NOT met'} "
          f"(largest window {max(m.insn_window):,})")
    print(f"  streaming: {hops.mean():,.0f} instructions per 160-sample hop (one new row), {hops.mean() / fixed:.1%} of a "
          f"whole-window recompute; state {state} bytes (edgetk_stream_t)")
    if net:
        print(f"  network: MLPerf Tiny kws_ref_model (DS-CNN) as edgetk C: {np.mean(net):,.0f} instructions/inference; "
              f"frontend = {fixed / (fixed + np.mean(net)):.1%} of frontend + network")
    print(f"  device features == host features (int8, stage-1 int16, streamed rows; DSP and portable builds) "
          f"on {n} windows: {same}")
    print(f"  vs numpy float64 reference: fixed-point max |err| {fx_err.max():.4f}, float C baseline max |err| "
          f"{np.abs(floats - ref).max():.4f} (MFCC units)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
