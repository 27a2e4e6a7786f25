"""A 1-D CNN for multichannel sensor windows (IMU), written with Conv2d kernels (1, k) so the
graph stays 2-D: input [N, C, 1, L]."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from toolkit.nn.layers import Classifier, ConvBNReLU, init_weights, scaled


@dataclass(frozen=True)
class CNN1DConfig:
    """1-D CNN hyper-parameters."""

    in_channels: int = 6
    n_classes: int = 4
    channels: tuple[int, ...] = (16, 32, 32)   # per conv stage, before the width multiplier
    kernel: int = 5
    width: float = 1.0
    dropout: float = 0.0


class CNN1D(nn.Module):
    """Input [N, C, 1, L] -> conv(1,k)/BN/ReLU/maxpool(1,2) stages -> global pool -> logits."""

    def __init__(self, cfg: CNN1DConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = cfg.in_channels
        for ch in cfg.channels:
            c_out = scaled(ch, cfg.width)
            layers += [ConvBNReLU(c_in, c_out, (1, cfg.kernel), padding=(0, cfg.kernel // 2)),
                       nn.MaxPool2d((1, 2))]                                    # L -> L // 2
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = Classifier(c_in, cfg.n_classes, cfg.dropout)
        init_weights(self)

    def forward(self, x):  # noqa: D102
        return self.head(self.features(x))
