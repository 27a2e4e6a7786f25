"""Fully-connected autoencoder for anomaly detection (like the MLPerf Tiny AD reference, Koizumi
et al. DCASE 2020): Linear+ReLU down to a bottleneck and back; score = reconstruction MSE."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from toolkit.nn.layers import scaled


@dataclass(frozen=True)
class AutoencoderConfig:
    """Autoencoder hyper-parameters."""

    n_inputs: int = 256
    hidden: tuple[int, ...] = (64, 64)   # encoder widths (mirrored in the decoder), before width
    bottleneck: int = 8
    width: float = 1.0


class Autoencoder(nn.Module):
    """Input [N, W] -> [N, W] reconstruction."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        sizes = [cfg.n_inputs] + [scaled(h, cfg.width) for h in cfg.hidden] + [cfg.bottleneck]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        rev = sizes[::-1]
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(rev) - 2:
                layers.append(nn.ReLU())
        # PyTorch's default Linear init: Kaiming-normal with the ReLU gain left the 8-unit
        # bottleneck dead on most seeds (reconstruction loss stuck near the data variance).
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # noqa: D102
        return self.net(x)
