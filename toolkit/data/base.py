"""TaskData: what every dataset loader returns (arrays in the torch NCHW layout)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TaskData:
    """Train/test arrays, label names, task kind and the front-end parameters."""

    x_train: np.ndarray       # float32, model input layout (NCHW, or [N, W] for FC autoencoders)
    y_train: np.ndarray       # int64 class ids (anomaly: all 0, the training set is normal only)
    x_test: np.ndarray
    y_test: np.ndarray        # int64 class ids (anomaly: 1 = anomalous window)
    labels: list[str]
    kind: str                 # "classification" | "anomaly"
    frontend: dict[str, Any] = field(default_factory=dict)  # raw sensor data -> model input
    name: str = ""
    groups_train: np.ndarray | None = None  # per-sample group (e.g. FSDD speaker name), None when unknown
    groups_test: np.ndarray | None = None
    ids_train: np.ndarray | None = None     # per-sample id (str): file path under root, "#w<k>" for windows; None when unknown
    ids_test: np.ndarray | None = None
    raw_train: np.ndarray | None = None     # the samples before features (audio int16 [N, clip]; series [N, T, C]; images [N, C, H, W])
    raw_test: np.ndarray | None = None      # (the bundle's golden raw vectors)
    split: dict[str, Any] = field(default_factory=dict)  # how train/test were cut: method, seed, groups on both sides
    problems: tuple[dict[str, Any], ...] = ()  # files skipped under data.on_error = "skip": {file, row, problem}
    soft_train: np.ndarray | None = None    # float32 [N, classes] soft label per sample (npz `soft`: distilled sets), None = y only
    soft_test: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample (without the batch axis)."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        """Number of classes (anomaly tasks: 2, normal/anomalous)."""
        return len(self.labels)

    def summary(self) -> str:
        """One line: sizes, input shape and classes."""
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test, input {list(self.input_shape)}, "
                f"{self.kind}, labels {self.labels}")


def select_groups(data: TaskData, groups: tuple[str, ...]) -> TaskData:
    """The task restricted to samples of the given groups (data.groups; fsdd: speakers)."""
    import dataclasses

    from toolkit.errors import EdgetkError

    if data.groups_train is None or data.groups_test is None:
        raise EdgetkError(f"dataset {data.name} has no groups to select {list(groups)} from",
                          fix="remove data.groups, or use a dataset with groups (fsdd: speakers)")
    known = sorted(set(data.groups_train.tolist()))
    missing = [g for g in groups if g not in known]
    if missing:
        raise EdgetkError(f"data.groups: unknown groups {missing} in {data.name}", fix=f"choose from {known}")
    return subset(data, np.isin(data.groups_train, groups), np.isin(data.groups_test, groups))


PER_SAMPLE = ("x", "y", "groups", "ids", "raw", "soft")


def subset(data: TaskData, train: np.ndarray, test: np.ndarray) -> TaskData:
    """The task keeping the train/test samples selected by index or mask (every per-sample array alike)."""
    import dataclasses

    def pick(name: str, sel: np.ndarray) -> np.ndarray | None:
        a = getattr(data, name)
        return None if a is None else a[sel]

    return dataclasses.replace(data, **{f"{k}_train": pick(f"{k}_train", train) for k in PER_SAMPLE},
                               **{f"{k}_test": pick(f"{k}_test", test) for k in PER_SAMPLE})


def standardize(x_train: np.ndarray, x_test: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalise both sets with the train set's mean/std over `axis`; return (x_train, x_test, mean, std)."""
    mean = x_train.mean(axis=axis, keepdims=True)
    std = x_train.std(axis=axis, keepdims=True) + 1e-6
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32), mean, std
