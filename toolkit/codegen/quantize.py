"""TFLite's integer requantization parameters, computed exactly as its C++ helpers do."""
from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def round_half_away(x: float) -> int:
    """std::round: halves away from zero."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(d: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: d = q * 2^(shift - 31) with q a Q0.31 int32."""
    if d == 0.0:
        return 0, 0
    q, shift = math.frexp(d)
    q_fixed = round_half_away(q * float(1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


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
                     channels: int) -> tuple[list[int], list[int]]:
    """Per-channel (or broadcast per-tensor) multipliers and shifts of a conv / FC."""
    scales = filter_scales if len(filter_scales) > 1 else filter_scales * channels
    pairs = [quantize_multiplier(float(in_scale) * float(fs) / float(out_scale)) for fs in scales]
    return [m for m, _ in pairs], [s for _, s in pairs]


def softmax_params(beta: float, in_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius with 5 integer bits: (mult, left_shift, diff_min)."""
    bits = 5
    real = min(float(beta) * float(in_scale) * float(1 << (31 - bits)), float((1 << 31) - 1))
    mult, left_shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << bits) - 1) * float(1 << (31 - bits)) / float(1 << left_shift))
    return mult, left_shift, -int(radius)


def mean_multiplier(in_scale: float, out_scale: float, n: int) -> tuple[int, int]:
    """TFLM's integer MEAN: in/out multiplier with 1/n folded in (int64 math, int32 wrap as in C)."""
    mult, shift = quantize_multiplier(float(in_scale) / float(out_scale))
    k = min(n.bit_length() - 1, 32, 31 + shift)
    m = ((mult << k) + n // 2) // n
    return ((m + (1 << 31)) % (1 << 32)) - (1 << 31), shift - k
