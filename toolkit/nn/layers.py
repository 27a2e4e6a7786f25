"""Small building blocks shared by the models (export-friendly ops only)."""
from __future__ import annotations

import torch
from torch import nn


def scaled(channels: int, width: float, minimum: int = 4) -> int:
    """Channels after the width multiplier, rounded to a multiple of 4 (at least `minimum`)."""
    return max(minimum, int(round(channels * width / 4)) * 4)


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1),
                 padding: tuple[int, int] = (0, 0), groups: int = 1, relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False),
                                   nn.BatchNorm2d(c_out)]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class Classifier(nn.Sequential):
    """Global average pool -> flatten -> dropout -> Linear."""

    def __init__(self, c_in: int, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, n_classes))


def init_weights(model: nn.Module) -> None:
    """Kaiming init for convs/linears, unit BN; deterministic under torch.manual_seed."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def n_params(model: nn.Module) -> int:
    """Number of parameters (BatchNorm running stats excluded)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["ConvBNReLU", "Classifier", "init_weights", "n_params", "scaled", "torch"]
