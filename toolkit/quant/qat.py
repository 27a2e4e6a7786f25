"""Quantization-aware fine-tuning with torch's own fake-quant ops (straight-through gradients).

Weights are fake-quantized per output channel (symmetric int8), activations after every Conv/Linear/
ReLU per tensor (asymmetric int8, running min/max). The returned model is plain float again, with
weights that survived the int8 grid; it then goes through the same PTQ and lowering as any model,
so the export still produces the same three formats.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QATConfig:
    """Fine-tuning schedule."""

    epochs: int = 3          # short: the model is already trained, QAT only adapts it to the int8 grid
    lr: float = 1e-4         # AdamW learning rate, constant
    batch_size: int = 32
    momentum: float = 0.9    # running min/max of activation ranges
    seed: int = 0


def _weight_fq(w: Any) -> Any:
    import torch

    dims = tuple(range(1, w.dim()))
    scale = (w.detach().abs().amax(dim=dims) / 127.0).clamp_min(1e-8)
    zp = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zp, 0, -127, 127)


def _weight_fake_quant() -> Any:
    """A parametrization module: the weight as the int8 kernel will see it."""
    from torch import nn

    class WeightFakeQuant(nn.Module):
        def forward(self, w: Any) -> Any:  # noqa: D102
            return _weight_fq(w)

    return WeightFakeQuant()


class _ActFakeQuant:
    """A forward hook with running min/max that fake-quantizes a module's output to int8."""

    def __init__(self, momentum: float) -> None:
        self.momentum, self.lo, self.hi = momentum, None, None

    def __call__(self, module: Any, inputs: Any, out: Any) -> Any:
        import torch

        lo, hi = float(out.detach().min().clamp(max=0)), float(out.detach().max().clamp(min=0))
        if self.lo is None:
            self.lo, self.hi = lo, hi
        elif module.training:
            m = self.momentum
            self.lo, self.hi = m * self.lo + (1 - m) * lo, m * self.hi + (1 - m) * hi
        scale = max((self.hi - self.lo) / 255.0, 1e-8)
        zp = int(np.clip(round(-128 - self.lo / scale), -128, 127))
        return torch.fake_quantize_per_tensor_affine(out, scale, zp, -128, 127)


def _loss(kind: str, out: Any, x: Any, y: Any) -> Any:
    import torch.nn.functional as F

    return F.mse_loss(out, x) if kind == "anomaly" else F.cross_entropy(out, y)


def qat_finetune(model: Any, data: Any, cfg: QATConfig | None = None, *, seed: int = 0) -> Any:
    """A fine-tuned float copy of `model` (BatchNorm folded) adapted to int8 weights and activations."""
    import torch
    from torch import nn
    from torch.nn.utils import parametrize

    from toolkit.export.onnx_fp32 import fold_batchnorm
    from toolkit.progress import bar

    cfg = cfg or QATConfig(seed=seed)
    torch.manual_seed(cfg.seed)
    m = fold_batchnorm(copy.deepcopy(model))
    layers = [mod for mod in m.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    for mod in layers:
        parametrize.register_parametrization(mod, "weight", _weight_fake_quant())
    hooks = [mod.register_forward_hook(_ActFakeQuant(cfg.momentum)) for mod in m.modules()
             if isinstance(mod, (nn.Conv2d, nn.Linear, nn.ReLU, nn.ReLU6))]
    opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    m.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x))
        with bar(f"QAT epoch {epoch + 1}/{cfg.epochs}", -(-len(x) // cfg.batch_size), "batch") as b:
            for i in range(0, len(x), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                loss = _loss(data.kind, m(x[idx]), x[idx], y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                b.advance(1, f"loss {loss.item():.4f}")
        log.info("QAT epoch %d/%d loss %.4f", epoch + 1, cfg.epochs, loss.item())
    for h in hooks:
        h.remove()
    for mod in layers:
        parametrize.remove_parametrizations(mod, "weight", leave_parametrized=False)
    return m.eval()
