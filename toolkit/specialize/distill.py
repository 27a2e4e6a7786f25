"""Knowledge distillation: a teacher's temperature-softened outputs teach a tiny student.

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, labels)

With few labels (labels_per_class > 0) the teacher learns from the labelled inputs only and the student from
every training input: label -1 marks an unlabelled one, which gets the soft-target term alone.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.errors import EdgetkError
from toolkit.recipe import DistillConfig

log = logging.getLogger(__name__)


def kd_loss(teacher: nn.Module, cfg: DistillConfig, label_smoothing: float = 0.0):
    """A trainer loss hook (model, x, y) -> loss mixing soft teacher targets and hard labels."""
    if cfg.temperature <= 0 or not 0.0 <= cfg.alpha <= 1.0:
        raise EdgetkError("[distill] needs temperature > 0 and 0 <= alpha <= 1",
                          fix="e.g. temperature = 4.0, alpha = 0.7")
    teacher.eval()
    t = cfg.temperature

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        student = model(x)
        with torch.no_grad():
            soft_targets = F.softmax(teacher(x) / t, dim=1)
        soft = F.kl_div(F.log_softmax(student / t, dim=1), soft_targets, reduction="batchmean") * t * t
        known = y >= 0                                  # y = -1: unlabelled, the teacher's soft targets only
        hard = (F.cross_entropy(student[known], y[known], label_smoothing=label_smoothing) if bool(known.any())
                else student.sum() * 0.0)
        return cfg.alpha * soft + (1 - cfg.alpha) * hard

    return loss


def unlabel(data, keep) -> object:
    """The task with every training label outside `keep` (indices) set to -1 (unlabelled)."""
    import dataclasses

    import numpy as np

    y = np.full_like(data.y_train, -1)
    y[keep] = data.y_train[keep]
    return dataclasses.replace(data, y_train=y)
