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
from typing import Any

import numpy as np

from toolkit.data.base import standardize
from toolkit.data.features import series_layout
from toolkit.data.source import Problems, Samples, resolve
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


CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
RATE_HZ = 10


def source(cfg: DataConfig, problems: Problems, frontend: Any = None) -> Samples:
    """The recordings as windows [N, 100, 6] (time, channel) in sensor units, with the archive's TRAIN/TEST split."""
    root = resolve(cfg, cfg.root) if cfg.root else sktime_data_dir("BasicMotions")
    parts = {split: _read(root, split.upper()) for split in ("train", "test")}
    classes = parts["train"][2]
    ids = {c: i for i, c in enumerate(classes)}
    x = np.concatenate([parts[s][0] for s in parts]).transpose(0, 2, 1)           # [N, T, C]
    labels = [v for s in parts for v in parts[s][1]]
    names = [f"BasicMotions_{s.upper()}.ts#{i}" for s in parts for i in range(len(parts[s][1]))]
    return Samples(x=np.ascontiguousarray(x), y=np.array([ids[v] for v in labels], dtype=np.int64), labels=classes,
                   ids=np.array(names, dtype=str), modality="series",
                   info={"sample_rate_hz": RATE_HZ, "window_samples": x.shape[1], "channels": CHANNELS},
                   given=np.array([s for s in parts for _ in parts[s][1]], dtype=str), name="basicmotions")


def float_features(raw_tr: np.ndarray, raw_te: np.ndarray, s: Samples, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """[N, 6, 1, 100] (channels x 1 x time), standardised per channel."""
    x_train, x_test, mean, std = standardize(series_layout(raw_tr), series_layout(raw_te), axis=(0, 2, 3))
    frontend = {"type": "imu", "sample_rate_hz": RATE_HZ, "window_samples": raw_tr.shape[1], "channels": CHANNELS,
                "layout": "[channels, 1, time]", "mean": mean.reshape(-1).tolist(), "std": std.reshape(-1).tolist(),
                "normalize": "per channel: (x - mean[c]) / std[c]"}
    return x_train, x_test, frontend
