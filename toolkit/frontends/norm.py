"""Stage 2: per-channel integer normalisation + quantisation to the model's int8 input (C: etf_quant.c)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MUL_BITS = 14  # multipliers in [2^13, 2^14): |(f - off) * mul| < 2^16 * 2^14 fits in 32 bits


@dataclass(frozen=True)
class Stage2:
    """q[t, c] = sat8(zero_point + round(((f[t, c] - off[c]) * mul[c]) / 2^shift[c]))."""

    off: tuple[int, ...]
    mul: tuple[int, ...]
    shift: tuple[int, ...]
    zero_point: int = 0

    def asdict(self) -> dict[str, list[int] | int]:
        """The integers, as JSON lists."""
        return {"off": list(self.off), "mul": list(self.mul), "shift": list(self.shift), "zero_point": self.zero_point}


def multiplier(m: float) -> tuple[int, int]:
    """(mul, shift) with mul / 2^shift ~ m, mul < 2^14, shift in [1, 30] (saturating outside that range)."""
    if not m > 0 or not math.isfinite(m):
        return 0, 1
    shift = min(30, max(1, MUL_BITS - 1 - math.floor(math.log2(m))))
    return min(round(m * 2.0 ** shift), (1 << MUL_BITS) - 1), shift


def stage2_params(mean: np.ndarray, std: np.ndarray, frac_bits: int, scale_log2: int) -> Stage2:
    """Integers of stage 2 for features f = value * 2^frac_bits: q ~ (value - mean) / std / 2^scale_log2."""
    off = [int(np.clip(round(float(m) * 2.0 ** frac_bits), -32768, 32767)) for m in mean]
    pairs = [multiplier(2.0 ** (-scale_log2 - frac_bits) / float(s)) for s in std]
    return Stage2(tuple(off), tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))


def quantize_like_c(feat: np.ndarray, st: Stage2) -> np.ndarray:
    """numpy twin of etf_quantize (for tests): int16 [..., C] -> int8 [..., C]."""
    y = (feat.astype(np.int64) - np.array(st.off)) * np.array(st.mul)
    sh = np.array(st.shift)
    return np.clip(st.zero_point + ((y + (1 << (sh - 1))) >> sh), -128, 127).astype(np.int8)
