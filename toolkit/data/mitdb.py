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
from typing import Any

import numpy as np

from toolkit.data.basicmotions import sktime_data_dir
from toolkit.data.source import Problems, Samples, resolve
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


def source(cfg: DataConfig, problems: Problems, frontend: Any = None) -> Samples:
    """Windows [N, window]: train = those wholly in the leading part (all normal), test = those starting after it."""
    root = resolve(cfg, cfg.root) if cfg.root else sktime_data_dir("mitdb")
    signal, label = read_csv(root / "mitdb.csv")
    window, stride = cfg.window or WINDOW, cfg.stride or STRIDE
    split = int(len(signal) * (cfg.train_fraction or TRAIN_FRACTION))
    starts, x, share = windows(signal, label, window, stride)
    train, test = starts + window <= split, starts >= split
    if label[:split].any():
        raise EdgetkError(f"data.train_fraction leaves labelled anomalies in the training part of {root}",
                          fix="lower data.train_fraction so the training part is normal only")
    keep = train | test
    y = np.where(train, 0, (share >= 0.5).astype(np.int64))[keep].astype(np.int64)
    return Samples(x=x[keep], y=y, labels=["normal", "anomaly"], kind="anomaly", modality="ecg",
                   ids=np.array([f"mitdb.csv#w{k}" for k in np.flatnonzero(keep)], dtype=str),
                   info={"sample_rate_hz": SAMPLE_RATE, "window_samples": window, "stride": stride},
                   given=np.where(train, "train", "test")[keep], name="mitdb")


def float_features(raw_tr: np.ndarray, raw_te: np.ndarray, s: Samples, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """Windows scaled with the training windows' mean/std (one scalar each)."""
    mean, std = float(raw_tr.mean()), float(raw_tr.std() + 1e-6)
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    frontend = {"type": "ecg", "sample_rate_hz": SAMPLE_RATE, "window_samples": s.info["window_samples"],
                "stride": s.info["stride"], "mean": mean, "std": std, "normalize": "(x - mean) / std", "layout": "[window]",
                "score": "mean squared reconstruction error"}
    return norm(raw_tr), norm(raw_te), frontend
