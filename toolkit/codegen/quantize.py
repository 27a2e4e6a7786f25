"""TFLite's integer requantization parameters, computed exactly as its C++ helpers do."""
from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
MAX_LEFT_SHIFT = 30  # et_mbqm and TFLite-Micro's MultiplyByQuantizedMultiplier shift an int32 left by at most this
INT32_LIMIT = 1 << 31


class MultiplierError(ValueError):
    """Scales whose requantization the int32 kernels cannot compute (the lowering names the operator)."""


def round_half_away(x: float) -> int:
    """std::round: halves away from zero."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(d: float, bound: int = 0) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: d = q * 2^(shift - 31) with q a Q0.31 int32.

    `bound` is the largest |value| the kernel multiplies: a left shift that would push it past int32 (undefined
    behaviour in C, in TFLite-Micro's kernels too) raises MultiplierError, as does any shift beyond 30 bits.
    """
    if not math.isfinite(d):
        raise MultiplierError(f"the requantization multiplier {d!r} (from the scales and options) is not finite")
    if d == 0.0:
        return 0, 0
    q, shift = math.frexp(d)
    q_fixed = round_half_away(q * float(1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    check_headroom(shift, bound, d)
    return int(q_fixed), int(shift)


def check_headroom(shift: int, bound: int, d: float) -> None:
    """Refuse a left shift beyond 30 bits, or one that pushes values up to `bound` past int32."""
    if shift > MAX_LEFT_SHIFT or (shift > 0 and bound << shift >= INT32_LIMIT):
        what = f"values up to {bound}" if bound else "an int32"
        raise MultiplierError(f"its scales give a requantization multiplier {d:.6g}, a left shift of {shift} bits of "
                              f"{what}: beyond int32 (the kernels, like TFLite-Micro's, shift by at most "
                              f"{MAX_LEFT_SHIFT} bits without overflow)")


def activation_range(act: str, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 (float32 arithmetic as in C++)."""
    def q(f: float) -> int:
        return zero_point + round_half_away(float(np.float32(f) / np.float32(scale)))
    if act == "NONE":
        return INT8_MIN, INT8_MAX
    if act == "RELU":
        return max(INT8_MIN, q(0.0)), INT8_MAX
    if act == "RELU6":
        return max(INT8_MIN, q(0.0)), min(INT8_MAX, q(6.0))
    if act == "RELU_N1_TO_1":
        return max(INT8_MIN, q(-1.0)), min(INT8_MAX, q(1.0))
    raise ValueError(act)


def conv_multipliers(in_scale: float, filter_scales: tuple[float, ...], out_scale: float,
                     channels: int, bounds: list[int] | None = None) -> tuple[list[int], list[int]]:
    """Per-channel (or broadcast per-tensor) multipliers and shifts of a conv / FC (bounds: per-channel |acc|)."""
    scales = filter_scales if len(filter_scales) > 1 else filter_scales * channels
    bounds = bounds or [0] * channels
    pairs = [quantize_multiplier(float(in_scale) * float(fs) / float(out_scale), b) for fs, b in zip(scales, bounds)]
    return [m for m, _ in pairs], [s for _, s in pairs]


def softmax_params(beta: float, in_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius with 5 integer bits: (mult, left_shift, diff_min)."""
    bits = 5
    real = min(float(beta) * float(in_scale) * float(1 << (31 - bits)), float((1 << 31) - 1))
    if not real > 1.0:  # TFLite-Micro: QuantizeMultiplierGreaterThanOne CHECKs it and aborts
        raise MultiplierError(f"beta × input scale ({float(beta) * float(in_scale):.3g}) is too small for the int8 "
                              f"softmax: TFLite-Micro needs beta × input scale × 2^{31 - bits} > 1 (it aborts)")
    mult, left_shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << bits) - 1) * float(1 << (31 - bits)) / float(1 << left_shift))
    return mult, left_shift, -int(radius)


def mean_multiplier(in_scale: float, out_scale: float, n: int) -> tuple[int, int]:
    """TFLM's integer MEAN: in/out multiplier with 1/n folded in (int64 math, int32 wrap as in C)."""
    mult, shift = quantize_multiplier(float(in_scale) / float(out_scale))
    k = min(n.bit_length() - 1, 32, 31 + shift)
    m = ((mult << k) + n // 2) // n
    check_headroom(shift - k, 255 * n, float(in_scale) / float(out_scale) / n)
    return ((m + (1 << 31)) % (1 << 32)) - (1 << 31), shift - k


def f32(x: float) -> np.float32:
    """A Python float as the C++ float it stands for."""
    return np.float32(x)


def frexp_multiplier(real: float) -> tuple[int, int]:
    """frexp + TfLiteRound(q * 2^31) without QuantizeMultiplier's 2^31 fix-up (LOGISTIC/TANH prepare)."""
    q, shift = math.frexp(real)
    return round_half_away(q * float(1 << 31)), shift


def input_radius(int_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """CalculateInputRadius: the largest |input - zero point| that does not saturate."""
    return int(math.floor(((1 << int_bits) - 1) * float(1 << (total_bits - int_bits)) / float(1 << left_shift)))


def downscale_multiplier_16(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    return 32767 if m >= (1 << 31) - 1 - (1 << 15) else (m + (1 << 15)) >> 16


def float_order_key(bits: int) -> int:
    """Order key of float32 bits as et_quant.c computes it (keys compare as the floats do)."""
    i = bits - (1 << 32) if bits >= 1 << 31 else bits
    return i if i >= 0 else (bits ^ 0x7FFFFFFF) - (1 << 32)


def _key_to_float(key: int) -> np.float32:
    bits = key if key >= 0 else (key + (1 << 32)) ^ 0x7FFFFFFF
    return np.array([bits], np.uint32).view(np.float32)[0]


def affine_quantize(x: np.float32, scale: float, zero_point: int) -> int:
    """TFLite AffineQuantize of one float32 to int8: round(x / scale) (float32, halves away) + zp, clamped."""
    with np.errstate(all="ignore"):
        v = np.float32(x) / np.float32(scale)
    if np.isnan(v):
        return INT8_MIN
    if abs(float(v)) > 1e9:
        return INT8_MAX if v > 0 else INT8_MIN
    return max(INT8_MIN, min(INT8_MAX, round_half_away(float(v)) + zero_point))


def quantize_thresholds(scale: float, zero_point: int) -> list[int]:
    """For k = 0..254 the smallest float32 order key whose AffineQuantize is >= -127 + k (monotone).

    The 255 binary searches run side by side on arrays: _affine_quantize_keys is affine_quantize, element-wise."""
    lo = np.full(255, float_order_key(0xFF800000), np.int64)       # -inf
    hi = np.full(255, float_order_key(0x7F800000) + 1, np.int64)   # past +inf
    want = np.arange(INT8_MIN + 1, INT8_MAX + 1, dtype=np.int64)
    while True:
        open_ = lo < hi
        if not open_.any():
            return [int(k) for k in lo]
        mid = (lo + hi) // 2
        up = _affine_quantize_keys(mid, scale, zero_point) >= want
        hi = np.where(open_ & up, mid, hi)
        lo = np.where(open_ & ~up, mid + 1, lo)


def _affine_quantize_keys(keys: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """affine_quantize of the float32 values with these order keys (the same float32 division and rounding)."""
    bits = np.where(keys >= 0, keys, (keys + (1 << 32)) ^ 0x7FFFFFFF).astype(np.uint32)
    with np.errstate(all="ignore"):
        v = bits.view(np.float32) / np.float32(scale)
        f = v.astype(np.float64)
        rounded = np.where(f >= 0, np.floor(f + 0.5), -np.floor(-f + 0.5))
    big = np.abs(f) > 1e9
    q = np.clip(np.where(big | np.isnan(f), 0, rounded).astype(np.int64) + zero_point, INT8_MIN, INT8_MAX)
    q = np.where(big, np.where(f > 0, INT8_MAX, INT8_MIN), q)
    return np.where(np.isnan(f), INT8_MIN, q)


def dequantize_lut(scale: float, zero_point: int) -> list[int]:
    """float32 bits of TFLite's Dequantize (double scale * (q - zp), cast to float) for q = (uint8) index."""
    vals = [np.float32(np.float64(np.float32(scale)) * float((q if q < 128 else q - 256) - zero_point))
            for q in range(256)]
    return [int(v) for v in np.array(vals, np.float32).view(np.uint32)]
