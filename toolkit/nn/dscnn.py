"""DS-CNN for keyword spotting (MLPerf Tiny KWS reference architecture, Zhang et al. 2017,
"Hello Edge"): a 10x4 stride-2 conv, then depthwise-separable blocks, global pool, linear."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from toolkit.nn.layers import Classifier, ConvBNReLU, init_weights, scaled


@dataclass(frozen=True)
class DSCNNConfig:
    """DS-CNN hyper-parameters; width scales every channel count."""

    in_channels: int = 1
    n_classes: int = 12
    channels: int = 64        # MLPerf Tiny KWS: 64
    blocks: int = 4           # depthwise-separable blocks
    width: float = 1.0
    dropout: float = 0.0


class DSCNN(nn.Module):
    """Input [N, 1, 49, 10] MFCCs -> logits [N, n_classes]."""

    def __init__(self, cfg: DSCNNConfig) -> None:
        super().__init__()
        c = scaled(cfg.channels, cfg.width)
        self.stem = ConvBNReLU(cfg.in_channels, c, (10, 4), (2, 2), (5, 1))   # [N, c, 25, 5]
        self.blocks = nn.Sequential(*[nn.Sequential(
            ConvBNReLU(c, c, (3, 3), padding=(1, 1), groups=c),                 # depthwise
            ConvBNReLU(c, c, (1, 1)),                                           # pointwise
        ) for _ in range(cfg.blocks)])
        self.head = Classifier(c, cfg.n_classes, cfg.dropout)                   # [N, n_classes]
        init_weights(self)

    def forward(self, x):  # noqa: D102
        return self.head(self.blocks(self.stem(x)))
