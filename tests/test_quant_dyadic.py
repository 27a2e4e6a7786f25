"""Dyadic requantization (toolkit.quant.dyadic): the pinned multipliers round like one exact shift in both
ONNX Runtime's arithmetic and TFLite's, and each graph pass keeps the model's function."""
from __future__ import annotations

import numpy as np
import pytest

from toolkit.codegen.quantize import quantize_multiplier
from toolkit.quant.dyadic import MAX_SHIFT, onnx_weight_scale, tflite_weight_scales


def _tflite_mbqm(acc: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding), int64 numpy."""
    x = acc.astype(np.int64) << max(shift, 0)
    ab = x * mult
    r = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(r >= 0, r >> 31, -((-r) >> 31))
    right = max(-shift, 0)
    mask = (1 << right) - 1
    return (high >> right) + ((high & mask) > (mask >> 1) + (high < 0))


def _half_away(acc: np.ndarray, k: int) -> np.ndarray:
    v = acc.astype(np.float64) / 2.0 ** k
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


@pytest.mark.parametrize("k", [-2, 0, 1, 2, 4, 7, 9, 11, MAX_SHIFT])
def test_pinned_multipliers_round_like_one_shift(k: int) -> None:
    """For every accumulator whose output is in int8 range (|acc/2^k| ≤ 256, ties included), ONNX Runtime's
    float32 product rounded half to even and TFLite's fixed-point double rounding both give acc/2^k rounded
    half away from zero — for random activation scales."""
    rng = np.random.default_rng(k + 10)
    top = 256 * 2 ** k if k >= 0 else 256 // 2 ** -k        # |acc / 2^k| ≤ 256: every in-range int8 output
    acc = np.arange(-top, top + 1, max(1, top // 2 ** 18), dtype=np.int64)
    ties = acc[(acc % 2 ** max(k, 1)) == 2 ** max(k - 1, 0)] if k > 0 else acc[:0]
    acc = np.concatenate([acc, ties, -ties, ties - 1, 1 - ties, ties + 1, -1 - ties])  # and the values around ties
    want = _half_away(acc, k)
    for _ in range(20):
        s_in, s_out = np.float32(rng.uniform(1e-3, 0.1)), np.float32(rng.uniform(1e-3, 0.1))
        s_onnx = onnx_weight_scale(float(s_in), float(s_out), k)
        ort_scale = np.float32(np.float32(s_in * s_onnx) / s_out)  # onnxruntime: X_scale * W_scale / Y_scale
        ort = np.rint(acc.astype(np.float32) * ort_scale)
        np.testing.assert_array_equal(ort, want)
        s_tfl = tflite_weight_scales(float(s_in), np.array([s_onnx]), float(s_out))[0]
        mult, shift = quantize_multiplier(float(s_in) * float(s_tfl) / float(s_out))
        assert shift == -k + 0 and mult < 2 ** 31, (mult, shift)
        np.testing.assert_array_equal(_tflite_mbqm(acc, mult, shift), want)
        unpinned, ushift = quantize_multiplier(float(s_in) * float(s_onnx) / float(s_out))
        if k >= 2:  # a right shift: TFLite's two roundings with the unpinned multiplier
            assert np.any(_tflite_mbqm(acc, unpinned, ushift) != want)  # without the pin TFLite rounds apart


def test_tflite_scales_leave_other_channels_alone() -> None:
    """Only channels whose multiplier the ONNX pass pinned (2^-k plus its hair) are moved."""
    s_in, s_out = 0.02, 0.05
    free = np.array([0.0013, 0.00071, 0.0042], np.float32)
    np.testing.assert_array_equal(tflite_weight_scales(s_in, free, s_out), free)


def test_beyond_max_shift_no_pin() -> None:
    """A multiplier below 2^-MAX_SHIFT is stored without the hair (float32 rounding would swamp it)."""
    k = MAX_SHIFT + 1
    s = onnx_weight_scale(0.01, 0.02, k)
    assert s == np.float32(2.0 ** -k * 0.02 / 0.01)
    np.testing.assert_array_equal(tflite_weight_scales(0.01, np.array([s]), 0.02), [s])
