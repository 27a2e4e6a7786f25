"""MIT-BIH ECG excerpt -> windowed anomaly detection.

7,500 samples of an MIT-BIH Arrhythmia Database record (Moody & Mark 2001, PhysioNet; 360 Hz) that
ship inside the sktime wheel (sktime/datasets/data/mitdb/mitdb.csv, columns `data,label`); `label`
marks one anomalous beat, samples 6936-7287. Windows of `window` samples every `stride` samples;
the autoencoder trains on windows that lie wholly in the leading `train_fraction` of the record
(all normal) and is tested on windows that start in the held-out rest. A test window is anomalous
when at least half of its samples carry the label.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.data.base import TaskData
from toolkit.data.basicmotions import sktime_data_dir
from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig

WINDOW, STRIDE, TRAIN_FRACTION, SAMPLE_RATE = 256, 8, 0.6, 360
FIX = "pip install sktime (its wheel ships mitdb.csv), or set data.root to a folder holding mitdb.csv"


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(signal float32, label int64) from the `data,label` CSV."""
    if not path.is_file():
        raise EdgetkError(f"MIT-BIH excerpt not found: {path}", fix=FIX)
    try:
        arr = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise EdgetkError(f"{path}: not a `data,label` CSV ({e})", fix=FIX) from None
    return arr[:, 0].astype(np.float32), arr[:, 1].astype(np.int64)


def windows(signal: np.ndarray, label: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, x [N, window], anomalous-share [N]) for every full window."""
    starts = np.arange(0, len(signal) - window + 1, stride)
    idx = starts[:, None] + np.arange(window)[None, :]
    return starts, signal[idx], label[idx].mean(axis=1)


def load(cfg: DataConfig) -> TaskData:
    """Windows [N, window] scaled with the training windows' mean/std; y_test 1 = anomalous."""
    root = Path(cfg.root).expanduser() if cfg.root else sktime_data_dir("mitdb")
    signal, label = read_csv(root / "mitdb.csv")
    window, stride = cfg.window or WINDOW, cfg.stride or STRIDE
    split = int(len(signal) * (cfg.train_fraction or TRAIN_FRACTION))
    starts, x, share = windows(signal, label, window, stride)
    train, test = starts + window <= split, starts >= split
    if label[:split].any():
        raise EdgetkError(f"data.train_fraction leaves labelled anomalies in the training part of {root}",
                          fix="lower data.train_fraction so the training part is normal only")
    mean, std = float(x[train].mean()), float(x[train].std() + 1e-6)
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    frontend = {"type": "ecg", "sample_rate_hz": SAMPLE_RATE, "window_samples": window, "stride": stride,
                "mean": mean, "std": std, "normalize": "(x - mean) / std", "layout": "[window]",
                "score": "mean squared reconstruction error"}
    y_test = (share[test] >= 0.5).astype(np.int64)
    return TaskData(norm(x[train]), np.zeros(int(train.sum()), np.int64), norm(x[test]), y_test,
                    ["normal", "anomaly"], "anomaly", frontend, "mitdb")
