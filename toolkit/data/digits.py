"""scikit-learn's 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", Alpaydin &
Kaynak 1998): 1,797 images, 16 grey levels, bundled with scikit-learn. Fixed-seed stratified split."""
from __future__ import annotations

import numpy as np

from toolkit.data.base import TaskData
from toolkit.recipe import DataConfig

LABELS = [str(d) for d in range(10)]


def load(cfg: DataConfig) -> TaskData:
    """Digits as [N, 1, 8, 8], pixels scaled to (v / 16 - mean) / std with train-set statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]          # [N, 1, 8, 8]
    x_tr, x_te, y_tr, y_te = train_test_split(x, d.target.astype(np.int64), test_size=cfg.test_fraction,
                                              random_state=cfg.split_seed, stratify=d.target)
    mean, std = float(x_tr.mean()), float(x_tr.std())
    frontend = {"type": "image", "height": 8, "width": 8, "channels": 1, "pixel_scale": 1 / 16,
                "mean": mean, "std": std, "normalize": "(pixel / 16 - mean) / std", "layout": "[1, 8, 8]"}
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return TaskData(norm(x_tr), y_tr, norm(x_te), y_te, LABELS, "classification", frontend, "digits")
