"""Knowledge distillation: a teacher's temperature-softened outputs teach a tiny student.

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, labels)
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
        hard = F.cross_entropy(student, y, label_smoothing=label_smoothing)
        return cfg.alpha * soft + (1 - cfg.alpha) * hard

    return loss
