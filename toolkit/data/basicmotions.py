"""BasicMotions: smartwatch IMU activity recognition (4 classes, 6 channels, 100 steps at 10 Hz).

Dataset from the UEA multivariate time series archive (Bagnall et al., "The UEA multivariate time
series classification archive, 2018", arXiv:1811.00075): four students wore a smart watch
(3-axis accelerometer + 3-axis gyroscope) while standing, walking, running and playing badminton;
40 train / 40 test recordings of 10 s. The .ts files ship inside the sktime wheel
(sktime/datasets/data/BasicMotions); this module parses them directly, without importing sktime.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from toolkit.data.base import TaskData, standardize
from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig

FIX = "pip install sktime (its wheel ships the data), or set data.root to a folder with BasicMotions_TRAIN.ts/_TEST.ts"


def sktime_data_dir(name: str) -> Path:
    """sktime/datasets/data/<name> inside the installed sktime package (sktime is not imported)."""
    spec = importlib.util.find_spec("sktime")
    if spec is None or spec.origin is None:
        raise EdgetkError("the sktime package is not installed, and it carries this dataset", fix=FIX)
    return Path(spec.origin).parent / "datasets" / "data" / name


def parse_ts(text: str, source: str = "<ts>") -> tuple[np.ndarray, list[str], list[str]]:
    """Parse an equal-length .ts file: (x [N, dims, length] float32, labels per row, class names)."""
    classes: list[str] = []
    rows, labels = [], []
    in_data = False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            low = line.lower()
            if low.startswith("@classlabel"):
                classes = line.split()[2:]
            in_data = low.startswith("@data")
            continue
        *dims, label = line.split(":")
        rows.append([[float(v) for v in d.split(",")] for d in dims])
        labels.append(label.strip())
    try:
        x = np.asarray(rows, dtype=np.float32)
    except ValueError:
        raise EdgetkError(f"{source}: series of unequal length", fix="use the equal-length BasicMotions files") from None
    if x.ndim != 3 or not labels:
        raise EdgetkError(f"{source}: no data rows found", fix=FIX)
    return x, labels, classes or sorted(set(labels))


def _read(root: Path, split: str) -> tuple[np.ndarray, list[str], list[str]]:
    path = root / f"BasicMotions_{split}.ts"
    if not path.is_file():
        raise EdgetkError(f"BasicMotions file not found: {path}", fix=FIX)
    return parse_ts(path.read_text(encoding="utf-8"), str(path))


def load(cfg: DataConfig) -> TaskData:
    """BasicMotions as [N, 6, 1, 100] (channels x 1 x time), standardised per channel."""
    root = Path(cfg.root).expanduser() if cfg.root else sktime_data_dir("BasicMotions")
    x_tr, l_tr, classes = _read(root, "TRAIN")
    x_te, l_te, _ = _read(root, "TEST")
    ids = {c: i for i, c in enumerate(classes)}
    x_train, x_test, mean, std = standardize(x_tr[:, :, None, :], x_te[:, :, None, :], axis=(0, 2, 3))
    frontend = {"type": "imu", "sample_rate_hz": 10, "window_samples": x_tr.shape[-1],
                "channels": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
                "layout": "[channels, 1, time]", "mean": mean.reshape(-1).tolist(), "std": std.reshape(-1).tolist(),
                "normalize": "per channel: (x - mean[c]) / std[c]"}
    y_tr = np.array([ids[v] for v in l_tr], dtype=np.int64)
    y_te = np.array([ids[v] for v in l_te], dtype=np.int64)
    return TaskData(x_train, y_tr, x_test, y_te, classes, "classification", frontend, "basicmotions")
