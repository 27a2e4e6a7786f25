"""A small ResNet for tiny images (in the spirit of the MLPerf Tiny IC ResNet-8): conv stem,
residual stages (the first block of a stage may stride 2 with a 1x1 projection), global pool, linear."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from toolkit.nn.layers import Classifier, ConvBNReLU, init_weights, scaled


@dataclass(frozen=True)
class ResNetConfig:
    """ResNet hyper-parameters."""

    in_channels: int = 1
    n_classes: int = 10
    channels: tuple[int, ...] = (16, 32, 64)   # per stage; stages after the first stride 2
    width: float = 1.0
    dropout: float = 0.0


class BasicBlock(nn.Module):
    """conv3x3/BN/ReLU -> conv3x3/BN, + shortcut (identity or 1x1 conv/BN), -> ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(c_in, c_out, (3, 3), (stride, stride), (1, 1))
        self.conv2 = ConvBNReLU(c_out, c_out, (3, 3), padding=(1, 1), relu=False)
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out
                         else ConvBNReLU(c_in, c_out, (1, 1), (stride, stride), relu=False))
        self.relu = nn.ReLU()

    def forward(self, x):  # noqa: D102
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet(nn.Module):
    """Input [N, C, H, W] -> logits [N, n_classes]."""

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        chans = [scaled(c, cfg.width) for c in cfg.channels]
        self.stem = ConvBNReLU(cfg.in_channels, chans[0], (3, 3), padding=(1, 1))        # [N, c0, H, W]
        self.stages = nn.Sequential(*[BasicBlock(c_in, c_out, 1 if i == 0 else 2)         # H, W halve per stage
                                      for i, (c_in, c_out) in enumerate(zip([chans[0]] + chans[:-1], chans))])
        self.head = Classifier(chans[-1], cfg.n_classes, cfg.dropout)
        init_weights(self)

    def forward(self, x):  # noqa: D102
        return self.head(self.stages(self.stem(x)))
