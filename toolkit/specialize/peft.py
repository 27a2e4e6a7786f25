"""Parameter-efficient fine-tuning: full, top layers, linear probe, BitFit, LoRA, adapters; and merge.

LoRA (on Conv2d and Linear), BitFit, the probe and top-layer tuning change only weights and biases
of the base architecture, so `merge` folds them back: the deployed model has exactly the base
parameters and MACs. Bottleneck adapters hold a ReLU between their two projections; they cannot be
folded and cost extra parameters and MACs on the device (bench/peft.py measures them).
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.errors import EdgetkError
from toolkit.recipe import FinetuneConfig

log = logging.getLogger(__name__)

MODES = ("full", "top", "probe", "bitfit", "lora", "adapter")
MERGEABLE = ("full", "top", "probe", "bitfit", "lora")


def check_mode(mode: str) -> str:
    """The mode if known, else an error naming the valid ones."""
    if mode not in MODES:
        raise EdgetkError(f"[finetune] mode = {mode!r} is not known", fix=f"use one of {', '.join(MODES)}")
    return mode


class LoRAConv2d(nn.Module):
    """A frozen Conv2d plus a trainable low-rank update alpha/r * B @ A of its weight."""

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        fan_in = base.in_channels // base.groups * base.kernel_size[0] * base.kernel_size[1]
        r = min(rank, fan_in, base.out_channels)
        self.scale = alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, fan_in))
        self.lora_B = nn.Parameter(torch.zeros(base.out_channels, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def delta(self) -> torch.Tensor:
        """The weight update, shaped like base.weight."""
        return (self.scale * self.lora_B @ self.lora_A).view_as(self.base.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.base
        if b.groups != 1:  # depthwise/grouped: the update lives in the (tiny) per-group kernels
            return F.conv2d(x, b.weight + self.delta(), b.bias, b.stride, b.padding, b.dilation, b.groups)
        a = self.lora_A.view(-1, b.in_channels, *b.kernel_size)
        h = F.conv2d(x, a, None, b.stride, b.padding, b.dilation)          # [N, r, H', W']
        up = (self.scale * self.lora_B)[:, :, None, None]
        return b(x) + F.conv2d(h, up)                                        # [N, Cout, H', W']

    def merged(self) -> nn.Conv2d:
        """A plain Conv2d with the update folded into its weight."""
        with torch.no_grad():
            self.base.weight += self.delta()
        return self.base


class LoRALinear(nn.Module):
    """A frozen Linear plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        r = min(rank, base.in_features, base.out_features)
        self.scale = alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.lora_A.t()) @ self.lora_B.t()

    def merged(self) -> nn.Linear:
        """A plain Linear with the update folded into its weight."""
        with torch.no_grad():
            self.base.weight += self.scale * self.lora_B @ self.lora_A
        return self.base


class Adapter(nn.Module):
    """A residual bottleneck adapter y + up(relu(down(y))) on c channels (starts as the identity)."""

    def __init__(self, c: int, rank: int) -> None:
        super().__init__()
        r = min(rank, c)
        self.down = nn.Conv2d(c, r, 1)
        self.up = nn.Conv2d(r, c, 1)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.up(F.relu(self.down(y)))


class AdaptedConv2d(Adapter):
    """A frozen Conv2d followed by an Adapter."""

    def __init__(self, base: nn.Conv2d, rank: int) -> None:
        super().__init__(base.out_channels, rank)
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.base(x))

    def behind(self, bn: nn.BatchNorm2d) -> tuple[nn.Conv2d, nn.Sequential]:
        """(conv, Sequential(bn, adapter')) computing bn(self(x)) exactly, so that bn folds into conv at export.

        bn(z) = s*z + t in eval mode; with y' = bn(y): down(y) = (down.w / s) y' + down.b - down.w (t / s)
        and s * up(h) = (s * up.w) h + s * up.b.
        """
        s = (bn.weight if bn.affine else 1.0) / torch.sqrt(bn.running_var + bn.eps)
        t = (bn.bias if bn.affine else 0.0) - bn.running_mean * s
        if not bool((s != 0).all()):
            raise EdgetkError("a BatchNorm after an adapter has a zero scale; the adapter cannot move behind it",
                              fix="export is not possible for this run; fine-tune it again")
        moved = Adapter(self.up.out_channels, self.down.out_channels)
        with torch.no_grad():
            moved.down.weight.copy_(self.down.weight / s[None, :, None, None])
            moved.down.bias.copy_(self.down.bias - self.down.weight[:, :, 0, 0] @ (t / s))
            moved.up.weight.copy_(self.up.weight * s[:, None, None, None])
            moved.up.bias.copy_(self.up.bias * s)
        return self.base, nn.Sequential(bn, moved)


def _replace(model: nn.Module, pred, make) -> int:
    """Replace every submodule for which pred(module) holds by make(module); return the count."""
    count = 0
    for name, child in list(model.named_children()):
        if pred(child):
            setattr(model, name, make(child))
            count += 1
        else:
            count += _replace(child, pred, make)
    return count


def head_of(model: nn.Module) -> nn.Linear:
    """The classifier head: the last Linear layer in registration order."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise EdgetkError("the model has no Linear head to probe or tune",
                          fix="use mode = 'full', 'bitfit' or 'lora' for this architecture")
    return linears[-1]


def _top_modules(model: nn.Module, k: int) -> list[nn.Module]:
    """The last k conv/linear layers and every norm layer registered after the first of them."""
    leaves = [m for m in model.modules() if not list(m.children()) and list(m.parameters(recurse=False))]
    idx = [i for i, m in enumerate(leaves) if isinstance(m, (nn.Conv2d, nn.Linear))]
    start = idx[-min(k, len(idx))]
    return leaves[start:]


def apply_peft(model: nn.Module, cfg: FinetuneConfig) -> nn.Module:
    """Freeze the base and make only the mode's parameters trainable (wrapping layers for LoRA/adapters)."""
    check_mode(cfg.mode)
    for p in model.parameters():
        p.requires_grad_(cfg.mode == "full")
    if cfg.mode == "lora":
        n = _replace(model, lambda m: isinstance(m, nn.Conv2d), lambda m: LoRAConv2d(m, cfg.rank, cfg.alpha))
        n += _replace(model, lambda m: isinstance(m, nn.Linear), lambda m: LoRALinear(m, cfg.rank, cfg.alpha))
        log.info("LoRA rank %d on %d layers", cfg.rank, n)
    elif cfg.mode == "adapter":
        _replace(model, lambda m: isinstance(m, nn.Conv2d) and m.groups == 1 and m.kernel_size == (1, 1),
                 lambda m: AdaptedConv2d(m, cfg.rank))
        head_of(model).requires_grad_(True)
    elif cfg.mode == "bitfit":
        for name, p in model.named_parameters():
            p.requires_grad_(name.endswith("bias"))
    elif cfg.mode == "probe":
        head_of(model).requires_grad_(True)
    elif cfg.mode == "top":
        for m in _top_modules(model, cfg.top_layers):
            m.requires_grad_(True)
    return model


def trainable_params(model: nn.Module) -> int:
    """Number of parameters the optimizer updates."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merge_peft(model: nn.Module) -> nn.Module:
    """Fold LoRA updates into the base layers in place; refuse models holding adapters."""
    adapters = [m for m in model.modules() if isinstance(m, AdaptedConv2d)]
    if adapters:
        raise EdgetkError(
            f"{len(adapters)} bottleneck adapters hold a ReLU between their projections and cannot be "
            "folded into the base weights",
            fix="export the adapted model as it is (it costs extra params/MACs, see bench/peft.py) "
                "or fine-tune with mode = 'lora'")
    _replace(model, lambda m: isinstance(m, (LoRAConv2d, LoRALinear)), lambda m: m.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def deployable(model: nn.Module, cfg: FinetuneConfig) -> nn.Module:
    """The eval-mode model as export ships it: foldable modes merged, adapters moved behind their BatchNorm."""
    if cfg.mode in MERGEABLE:
        return merge_peft(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            if isinstance(seq[i], AdaptedConv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i], seq[i + 1] = seq[i].behind(seq[i + 1].eval())
    return model.eval()
