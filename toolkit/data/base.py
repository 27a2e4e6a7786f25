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


def standardize(x_train: np.ndarray, x_test: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalise both sets with the train set's mean/std over `axis`; return (x_train, x_test, mean, std)."""
    mean = x_train.mean(axis=axis, keepdims=True)
    std = x_train.std(axis=axis, keepdims=True) + 1e-6
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32), mean, std
