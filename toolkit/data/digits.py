"""scikit-learn's 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", Alpaydin &
Kaynak 1998): 1,797 images, 16 grey levels, bundled with scikit-learn. Seeded stratified fraction split."""
from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.data.source import Problems, Samples
from toolkit.recipe import DataConfig

LABELS = [str(d) for d in range(10)]


def source(cfg: DataConfig, problems: Problems, frontend: Any = None) -> Samples:
    """The images as [N, 1, 8, 8] grey levels 0-16 (no groups, no given split: data.split auto = fraction)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return Samples(x=d.images.astype(np.float32)[:, None], y=d.target.astype(np.int64), labels=LABELS,
                   ids=np.array([f"digits#{i}" for i in range(len(d.target))], dtype=str), modality="image",
                   info={"height": 8, "width": 8, "channels": 1}, name="digits")


def float_features(raw_tr: np.ndarray, raw_te: np.ndarray, s: Samples, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pixels scaled to (v / 16 - mean) / std with train-set statistics."""
    x_tr, x_te = raw_tr / 16.0, raw_te / 16.0
    mean, std = float(x_tr.mean()), float(x_tr.std())
    frontend = {"type": "image", "height": 8, "width": 8, "channels": 1, "pixel_scale": 1 / 16,
                "mean": mean, "std": std, "normalize": "(pixel / 16 - mean) / std", "layout": "[1, 8, 8]"}
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return norm(x_tr), norm(x_te), frontend
