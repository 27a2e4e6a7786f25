"""Test-set metrics: top-1 and confusion matrix for classifiers, ROC AUC of the reconstruction error for anomaly models."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from toolkit.data.base import TaskData


def predict(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Model outputs for x in eval mode, as float32 numpy."""
    was = model.training
    model.eval()
    with torch.no_grad():
        out = [model(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)]
    model.train(was)
    return np.concatenate(out).astype(np.float32)


def anomaly_scores(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Mean squared reconstruction error per sample."""
    recon = predict(model, x)
    return ((recon - x) ** 2).reshape(len(x), -1).mean(axis=1)


def evaluate(model: nn.Module, data: TaskData) -> dict[str, Any]:
    """The task metric on the test set: {"metric": name, "value": float, ...details}."""
    if data.kind == "anomaly":
        from sklearn.metrics import roc_auc_score

        scores = anomaly_scores(model, data.x_test)
        train = anomaly_scores(model, data.x_train)
        auc = float(roc_auc_score(data.y_test, scores))
        return {"metric": "test_auc", "value": auc, "test_auc": auc,
                "threshold": float(np.percentile(train, 99)), "train_score_mean": float(train.mean()),
                "n_test_anomalous": int(data.y_test.sum())}
    pred = predict(model, data.x_test).argmax(axis=1)
    n = data.n_classes
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (data.y_test, pred), 1)
    top1 = float((pred == data.y_test).mean())
    return {"metric": "test_top1", "value": top1, "test_top1": top1, "confusion": confusion.tolist()}
