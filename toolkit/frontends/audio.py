"""mfcc and logmel: tables for the fixed-point C kernel (etf_mfcc.c) computed from the parameters (pure)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.frontends.config import FrontendConfig
from toolkit.frontends.emit import c_array, stage2_arrays

COEF_BITS = 22        # DCT-II * ln2 (and ln2 alone) in Q22
LOG_BITS = 16         # log2 values in Q16
OUT_FRAC = {"mfcc": 7, "logmel": 10}  # stage-1 int16 outputs: MFCC c0 reaches about +/-100, log-mel about +/-16
LIMIT = 2.0 ** 31 * 0.99  # headroom left for rounding constants


@dataclass(frozen=True)
class MfccPlan:
    """Everything etf_mfcc_params holds, as numbers and numpy tables."""

    scalars: dict[str, int]
    window: np.ndarray     # int32 [frame_len] Q31
    fft_tw: np.ndarray     # int32 [triplets, 6] Q30 (fft_twiddles)
    fft_pos: np.ndarray    # uint16 [N]
    split_tw: np.ndarray   # int32 [N/2, 2] Q30 exp(-i pi k / N), k = 1 .. N/2
    seg_end: np.ndarray    # uint16 [n_mels+1]
    mel_up: np.ndarray     # uint16 [bins] Q15
    coef: np.ndarray       # int32 Q22
    floor_q: int

    @property
    def frac_bits(self) -> int:
        """Q format of the int16 stage-1 rows."""
        return self.scalars["out_frac"]


def in_shift(n_fft: int, frame_len: int) -> int:
    """Smallest right shift of the windowed Q30 products that keeps every FFT sum and the energy in range."""
    n = n_fft // 2
    n4 = int(math.log2(n)) // 2
    for s in range(0, 16):
        b0 = 2.0 ** (30 - s)
        stages_ok = 4 * b0 * math.sqrt(2) ** max(n4 - 1, 0) < LIMIT   # sums of 4 terms before each radix-4 scaling
        out_ok = 2 * b0 * math.sqrt(2) ** n4 < LIMIT                  # radix-2 stage and the real split
        energy_ok = frame_len * b0 * b0 < 2.0 ** 64 * 0.99
        if stages_ok and out_ok and energy_ok:
            return s
    raise EdgetkError(f"no safe scaling for n_fft={n_fft}", fix="use n_fft <= 4096")


def fft_positions(n: int) -> np.ndarray:
    """Buffer position of Z[k] after radix-4 DIF stages (+ a final radix-2 stage when log2 n is odd)."""
    radices = [4] * (int(math.log2(n)) // 2) + [2] * (int(math.log2(n)) % 2)
    pos = np.zeros(n, dtype=np.int64)
    for p in range(n):
        rest, stride, k, weight = p, n, 0, 1
        for r in radices:
            stride //= r
            digit, rest = divmod(rest, stride)
            k += digit * weight
            weight *= r
        pos[k] = p
    return pos


def fft_twiddles(n: int) -> np.ndarray:
    """Q30 twiddles of the radix-4 DIF stages: per stage (quarter q = n/4, n/16, ...), for j = 1 .. q-1,
    the triplet W^(j s), W^(2 j s), W^(3 j s) with W = exp(-2 pi i / n), s = n / (4 q)."""
    rows, q = [], n // 4
    while q >= 1:
        s = n // (4 * q)
        for j in range(1, q):
            rows += [j * s, 2 * j * s, 3 * j * s]
        q //= 4
    return _q30(2 * np.pi * np.array(rows, dtype=np.float64) / n).reshape(-1, 6) if rows else np.zeros((0, 6), np.int64)


def mel_points(cfg: FrontendConfig) -> np.ndarray:
    """n_mels + 2 filter edge frequencies (Hz), HTK mel scale, as toolkit/data/mfcc.py."""
    def hz_to_mel(f: float) -> float:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2)
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


def mel_segments(cfg: FrontendConfig) -> tuple[int, np.ndarray, np.ndarray]:
    """(bin_lo, seg_end [n_mels+1], mel_up Q15 per bin from bin_lo): the sparse triangular filterbank."""
    pts = mel_points(cfg)
    bins = np.arange(cfg.n_fft // 2 + 1) * cfg.sample_rate / cfg.n_fft
    seg = np.searchsorted(pts, bins, side="right") - 1          # segment j: pts[j] <= f < pts[j+1]
    used = np.flatnonzero((seg >= 0) & (seg <= cfg.n_mels))
    if used.size == 0:
        raise EdgetkError("no FFT bin falls between frontend.fmin and fmax", fix="widen fmin/fmax or raise n_fft")
    lo, hi = int(used[0]), int(used[-1]) + 1
    seg_end = np.array([lo + int(np.sum(seg[lo:hi] <= j)) for j in range(cfg.n_mels + 1)])
    j = seg[lo:hi]
    up = (bins[lo:hi] - pts[j]) / (pts[j + 1] - pts[j])
    return lo, seg_end, np.clip(np.round(up * 32768), 0, 32768).astype(np.int64)


def _q30(angle: np.ndarray) -> np.ndarray:
    return np.stack([np.round(np.cos(angle) * 2 ** 30), np.round(-np.sin(angle) * 2 ** 30)], axis=1).astype(np.int64)


def plan(cfg: FrontendConfig) -> MfccPlan:
    """The kernel's tables and scalars for an mfcc/logmel config (validated)."""
    cfg.validate()
    n = cfg.n_fft // 2
    log2n = int(math.log2(cfg.n_fft))
    dct = cfg.type == "mfcc"
    out_frac = OUT_FRAC[cfg.type]
    window = np.minimum(np.round((0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.frame_len) / cfg.frame_len)) * 2.0 ** 31),
                        2 ** 31 - 1)
    bin_lo, seg_end, mel_up = mel_segments(cfg)
    if dct:
        from toolkit.data.mfcc import dct_matrix  # the float reference's orthonormal DCT-II

        coef = np.round(dct_matrix(cfg.n_mels, cfg.n_mfcc) * math.log(2) * 2 ** COEF_BITS)
    else:
        coef = np.array([round(math.log(2) * 2 ** COEF_BITS)])
    floor_shift = 62 - math.ceil(math.log2(cfg.log_floor))
    scalars = {"frame_len": cfg.frame_len, "hop": cfg.hop, "n_frames": cfg.n_frames, "log2_n_fft": log2n,
               "n_radix4": int(math.log2(n)) // 2, "radix2": int(math.log2(n)) % 2,
               "in_shift": in_shift(cfg.n_fft, cfg.frame_len), "n_mels": cfg.n_mels, "bin_lo": bin_lo,
               "n_out": cfg.n_mfcc if dct else cfg.n_mels, "dct": int(dct),
               "out_shift": LOG_BITS + COEF_BITS - out_frac, "floor_shift": floor_shift, "out_frac": out_frac}
    return MfccPlan(scalars, window.astype(np.int64), fft_twiddles(n),
                    fft_positions(n), _q30(np.pi * np.arange(1, n // 2 + 1) / n), seg_end, mel_up,
                    coef.astype(np.int64), round(cfg.log_floor * 2.0 ** floor_shift))


PARAM_ORDER = ("frame_len", "hop", "n_frames", "log2_n_fft", "n_radix4", "radix2", "in_shift", "n_mels", "bin_lo",
               "n_out", "dct", "out_shift", "floor_shift")


def c_source(cfg: FrontendConfig, p: MfccPlan, stage2: object) -> str:
    """edgetk_frontend.c for an mfcc/logmel frontend: tables, parameters, scratch and the entry points."""
    s = p.scalars
    n = cfg.n_fft // 2
    stream = cfg.frame_len % cfg.hop == 0
    params = ", ".join(str(s[k]) for k in PARAM_ORDER)
    parts = [
        f"/* edgetk frontend \"{cfg.type}\" (generated; do not edit). Tables computed by toolkit/frontends/audio.py. */",
        '#include "edgetk_frontend.h"', "", '#include "etf_mfcc.h"', '#include "etf_quant.h"', "",
        c_array("int32_t", "g_window", p.window), c_array("int32_t", "g_fft_tw", p.fft_tw),
        c_array("uint16_t", "g_fft_pos", p.fft_pos), c_array("int32_t", "g_split_tw", p.split_tw),
        c_array("uint16_t", "g_seg_end", p.seg_end), c_array("uint16_t", "g_mel_up", p.mel_up),
        c_array("int32_t", "g_coef", p.coef), stage2_arrays(stage2),
        "static const etf_mfcc_params g_params = {",
        f"    {params}, {p.floor_q}ull,",
        "    g_window, g_fft_tw, g_fft_pos, g_split_tw, g_seg_end, g_mel_up, g_coef,", "};", "",
        f"static int32_t g_fft[{2 * n}];", f"static uint64_t g_power[{n + 1}];",
        f"static uint64_t g_seg[{2 * (cfg.n_mels + 1)}];", f"static int32_t g_logs[{cfg.n_mels}];",
        f"static int16_t g_row[{s['n_out']}];",
        "static const etf_mfcc_scratch g_scratch = {g_fft, g_power, g_seg, g_logs};", "",
        "int edgetk_features_stage1(const int16_t *raw, int16_t *stage1)", "{",
        "    etf_mfcc_window(&g_params, raw, stage1, &g_scratch);", "    return 0;", "}", "",
        "int edgetk_features(const int16_t *raw, int8_t *features)", "{", "    int32_t i;",
        f"    for (i = 0; i < {cfg.n_frames}; i++) {{",
        f"        etf_mfcc_frame(&g_params, raw + i * {cfg.hop}, g_row, &g_scratch);",
        f"        etf_quantize(g_row, features + i * {s['n_out']}, 1, {s['n_out']}, g_off, g_mul, g_shift, "
        f"{stage2.zero_point});",
        "    }", "    return 0;", "}", ""]
    if stream:
        parts += [
            "void edgetk_stream_init(edgetk_stream_t *s)", "{",
            "    volatile int16_t *h = s->hist; /* volatile: gcc would make a memset call of a zero loop */",
            "    int32_t i;", "    for (i = 0; i < EDGETK_FRAME_LEN; i++) {", "        h[i] = 0;", "    }", "    s->filled = 0;",
            "}",
            "", "int edgetk_stream_push(edgetk_stream_t *s, const int16_t *hop_samples, int8_t *row)", "{",
            "    if (!etf_mfcc_stream_push(&g_params, s->hist, &s->filled, hop_samples, g_row, &g_scratch)) {",
            "        return 0;", "    }",
            f"    etf_quantize(g_row, row, 1, {s['n_out']}, g_off, g_mul, g_shift, {stage2.zero_point});",
            "    return 1;", "}", ""]
    return "\n".join(parts)


def describe(cfg: FrontendConfig, p: MfccPlan) -> str:
    """The header comment: parameters and formats."""
    return (f"{cfg.type}: {cfg.sample_rate} Hz, {cfg.clip_samples} samples -> {cfg.n_frames} frames of {cfg.frame_len} "
            f"(hop {cfg.hop}), n_fft {cfg.n_fft}, {cfg.n_mels} HTK mel filters {cfg.fmin}-{cfg.fmax_hz} Hz"
            + (f", {cfg.n_mfcc} DCT-II (ortho) coefficients" if cfg.type == "mfcc" else "")
            + f".\nraw: int16 PCM (value / 32768); stage 1: int16 Q{p.frac_bits} ({'MFCC' if cfg.type == 'mfcc' else 'ln mel'});"
            f" stage 2: int8 = round((f - off[c]) * mul[c] / 2^shift[c]).")


def stream_info(cfg: FrontendConfig) -> dict[str, int] | None:
    """Streaming parameters for the header (None when frame_len is not a multiple of hop)."""
    if cfg.frame_len % cfg.hop:
        return None
    return {"hop": cfg.hop, "frame_len": cfg.frame_len, "row": cfg.n_mfcc if cfg.type == "mfcc" else cfg.n_mels}


def float_reference(cfg: FrontendConfig, pcm: np.ndarray) -> np.ndarray:
    """The float features of int16 PCM [N, clip_samples] with toolkit/data/mfcc.py (float64): [N, T, C]."""
    from toolkit.data.mfcc import MfccConfig, mel_filterbank, mfcc

    mc = MfccConfig(sample_rate=cfg.sample_rate, clip_samples=cfg.clip_samples, frame_len=cfg.frame_len, hop=cfg.hop,
                    n_fft=cfg.n_fft, n_mels=cfg.n_mels, n_mfcc=cfg.n_mfcc, fmin=cfg.fmin, fmax=cfg.fmax_hz,
                    log_floor=cfg.log_floor)
    x = pcm.astype(np.float64) / 32768.0
    if cfg.type == "mfcc":
        return mfcc(x, mc).astype(np.float64)
    idx = np.arange(cfg.frame_len)[None, :] + cfg.hop * np.arange(cfg.n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.frame_len) / cfg.frame_len)
    power = np.abs(np.fft.rfft(x[:, idx] * window, n=cfg.n_fft)) ** 2
    return np.log(power @ mel_filterbank(mc).T + cfg.log_floor)
