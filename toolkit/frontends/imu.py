"""imu: windowed raw sensor samples. Stage 1 is the identity on int16 counts [T, C]; the float sensor
values become counts on the host (that emulates the sensor driver: counts = round(value * counts_per_unit))."""
from __future__ import annotations

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.frontends.config import FrontendConfig
from toolkit.frontends.emit import stage2_arrays

HEADROOM = 16384.0  # auto counts_per_unit: the training split's largest |value| per channel maps to half of int16


def counts_per_unit(cfg: FrontendConfig, raw_train: np.ndarray) -> tuple[float, ...]:
    """The recipe's counts_per_unit, or one per channel from the training split's range (recorded in the info)."""
    channels = raw_train.shape[-1]
    if cfg.counts_per_unit:
        if len(cfg.counts_per_unit) != channels:
            raise EdgetkError(f"frontend.counts_per_unit has {len(cfg.counts_per_unit)} values for {channels} channels",
                              fix=f"give one value per channel ({channels}), or remove it to derive them from the data")
        return tuple(float(c) for c in cfg.counts_per_unit)
    peak = np.abs(raw_train.reshape(-1, channels)).max(axis=0).astype(np.float64)
    return tuple(float(HEADROOM / p) if p > 0 else 1.0 for p in peak)


def to_counts(values: np.ndarray, cpu: tuple[float, ...]) -> np.ndarray:
    """float sensor values [..., C] -> int16 counts (rounded, saturated) as a sensor driver delivers them."""
    return np.clip(np.round(values.astype(np.float64) * np.array(cpu)), -32768, 32767).astype(np.int16)


def c_source(shape: tuple[int, int], stage2: object) -> str:
    """edgetk_frontend.c for the imu frontend: stage 1 copies the counts, stage 2 normalises and quantises."""
    t, c = shape
    return "\n".join([
        "/* edgetk frontend \"imu\" (generated; do not edit). */", '#include "edgetk_frontend.h"', "",
        '#include "etf_quant.h"', "", stage2_arrays(stage2),
        "int edgetk_features_stage1(const int16_t *raw, int16_t *stage1)", "{", "    int32_t i;",
        f"    for (i = 0; i < {t * c}; i++) {{", "        stage1[i] = raw[i];", "    }", "    return 0;", "}", "",
        "int edgetk_features(const int16_t *raw, int8_t *features)", "{",
        f"    etf_quantize(raw, features, {t}, {c}, g_off, g_mul, g_shift, {stage2.zero_point});",
        "    return 0;", "}", ""])


def describe(shape: tuple[int, int], cpu: tuple[float, ...]) -> str:
    """The header comment."""
    return (f"imu: int16 sensor counts [T={shape[0]}, C={shape[1]}], time-major, channels interleaved; counts per unit "
            f"{[round(c, 6) for c in cpu]}.\nstage 1: identity (Q0 counts); stage 2: int8 = round((f - off[c]) * mul[c] "
            "/ 2^shift[c]).")
