"""Agreement between device outputs and the host reference (pure numpy)."""
from __future__ import annotations

import numpy as np


def agreement(device: np.ndarray, reference: np.ndarray, *, zero_point: int = 0) -> dict[str, float | int | bool]:
    """top-1 agreement, max LSB difference, RMSE (LSB), cosine, bit-exactness of int8 outputs [N, ...]."""
    d = device.reshape(len(device), -1).astype(np.float64)
    r = reference.reshape(len(reference), -1).astype(np.float64)
    diff = d - r
    dz, rz = d - zero_point, r - zero_point
    denom = np.linalg.norm(dz) * np.linalg.norm(rz)
    return {
        "samples": int(len(d)),
        "top1_agreement": float(np.mean(d.argmax(1) == r.argmax(1))) if len(d) else 0.0,
        "max_lsb_diff": int(np.abs(diff).max()) if diff.size else 0,
        "rmse_lsb": float(np.sqrt(np.mean(diff ** 2))) if diff.size else 0.0,
        "cosine": min(1.0, float((dz * rz).sum() / denom)) if denom else 1.0,
        "bit_exact": bool(np.array_equal(d, r)),
    }
