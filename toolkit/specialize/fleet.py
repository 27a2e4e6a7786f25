"""Fleets: one specialized model per group (speaker, robot, sensor unit), trained as one batched job.

All members share one architecture; `stack.stack_models` turns M members into one model of grouped
operators (member m owns channel block m), so one forward/backward runs the whole fleet. The summed
loss gives each member exactly its own gradient and AdamW is element-wise, so a member follows the
same trajectory as its twin trained alone (`batched=False`) up to float rounding.
(`torch.func.vmap` over `stack_module_state` was measured 1.0x and slower than this on 2 CPU cores.)
Members go through in stacks of 4 by default: a stack's activations must stay in the core's L2 cache
(width-0.25 DS-CNN, batch 32: 256 KB per member per layer; measured on the 2-core EPYC, 1 thread,
channels-last: 3.2-3.7 ms per member-step in stacks of 4, 4.9-6.0 at 8, 7.1-7.8 at 16, vs 8.7 for one
plain model; micro-benchmark of one step). `edgetk train` uses the recipe's `[fleet] stack`
(FleetConfig default 8, owned by toolkit/recipe.py); bench/fleet.py passes 4. Profile of a stack of
4 (per step): BatchNorm fwd+bwd ~30 %, depthwise and pointwise convolutions ~23 % each, ReLU backward
~11 %, AdamW ~3 %;
bmm/einsum pointwise layers and torch.compile were measured no faster (compile: 7.8 vs 4.5 ms, 38 s).

BatchNorm: a stacked BatchNorm over M*C channels keeps per-channel, hence per-member, batch
statistics and running statistics: train-mode BN is exact, no special handling needed.
Dropout draws different masks than the member alone would; twins agree exactly only without it.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.errors import EdgetkError
from toolkit.recipe import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One fleet member's data and, after training, its model and test top-1."""

    name: str
    group: str
    seed: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    model: nn.Module | None = None
    test_top1: float = float("nan")
    extra: dict = field(default_factory=dict)


def split_members(x: np.ndarray, y: np.ndarray, groups: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, groups_test: np.ndarray, members: int, seed: int) -> list[Member]:
    """One member per group (cycled with fresh seeds when more members than groups are asked for)."""
    names = sorted(set(groups.tolist()))
    if not names:
        raise EdgetkError("the dataset has no groups to build a fleet from",
                          fix="pick a task whose loader provides groups (kws-digits: speaker)")
    count = members or len(names)
    out = []
    for i in range(count):
        g = names[i % len(names)]
        tr, te = groups == g, groups_test == g
        out.append(Member(f"{g}-{i // len(names)}" if count > len(names) else str(g), str(g), seed + i,
                          x[tr], y[tr], x_test[te], y_test[te]))
    return out


def _orders(members: list[Member], steps: int, bs: int, epoch_gens: list[torch.Generator]) -> torch.Tensor:
    """Per-member batch indices for one epoch: [M, steps, bs] (shorter members wrap around)."""
    rows = []
    for m, g in zip(members, epoch_gens):
        n = len(m.y_train)
        perm = torch.cat([torch.randperm(n, generator=g) for _ in range(math.ceil(steps * bs / n))])
        rows.append(perm[: steps * bs].view(steps, bs))
    return torch.stack(rows)


def _steps(members: list[Member], bs: int) -> int:
    return math.ceil(max(len(m.y_train) for m in members) / bs)


def train_fleet(make_model: Callable[[int], nn.Module], members: list[Member], cfg: TrainConfig,
                batched: bool = True, stack: int = 4, ckpt_dir: Path | None = None) -> float:
    """Train every member (in stacks of `stack`, or one after another); fill model and test_top1; return seconds.

    With `ckpt_dir`, stack i saves its state to ckpt_dir/stack-<i>.pt after every epoch and continues from it.
    """
    t0 = time.perf_counter()
    size = max(1, stack) if batched else 1
    for i in range(0, len(members), size):
        ckpt = ckpt_dir / f"stack-{i // size}.pt" if ckpt_dir is not None else None
        _train_batched(make_model, members[i:i + size], cfg, plain=not batched, ckpt=ckpt)
    seconds = time.perf_counter() - t0
    for m in members:
        m.test_top1 = evaluate(m.model, m.x_test, m.y_test)
    return seconds


def _train_batched(make_model: Callable[[int], nn.Module], members: list[Member], cfg: TrainConfig,
                   plain: bool = False, ckpt: Path | None = None) -> None:
    from toolkit.specialize.stack import stack_models, unstack
    from toolkit.train.checkpoint import resume_loop, save_loop
    from toolkit.train.trainer import make_optimizer, make_scheduler

    models = [make_model(m.seed) for m in members]
    data = [(torch.as_tensor(m.x_train), torch.as_tensor(m.y_train)) for m in members]
    gens = [torch.Generator().manual_seed(m.seed) for m in members]
    net = models[0] if plain else stack_models(models, data[0][0][: cfg.batch_size])
    net.train()
    if not plain:
        net = net.to(memory_format=torch.channels_last)
    steps = _steps(members, cfg.batch_size)
    opt = make_optimizer(cfg, list(net.parameters()))
    sched = make_scheduler(cfg, opt, cfg.epochs * steps)
    for epoch in range(resume_loop(ckpt, net, opt, sched, gens).get("epoch", 0), cfg.epochs):
        _fleet_epoch(net, opt, sched, data, _orders(members, steps, cfg.batch_size, gens), cfg, plain)
        if ckpt is not None:
            save_loop(ckpt, net, opt, sched, epoch + 1, gens)
    if not plain:
        unstack(net, models)
    for m, model in zip(members, models):
        m.model = model.eval()


def _fleet_epoch(net: nn.Module, opt, sched, data: list[tuple[torch.Tensor, torch.Tensor]], order: torch.Tensor,
                 cfg: TrainConfig, plain: bool) -> None:
    """One epoch of the stacked net over every member's batches (order: [M, steps, bs] indices)."""
    from toolkit.specialize.stack import from_blocks, to_blocks

    for s in range(order.shape[1]):
        xb = torch.stack([x[order[i, s]] for i, (x, _) in enumerate(data)])      # [M, bs, C, H, W]
        yb = torch.stack([y[order[i, s]] for i, (_, y) in enumerate(data)])      # [M, bs]
        xin = to_blocks(xb) if plain else to_blocks(xb).contiguous(memory_format=torch.channels_last)
        logits = from_blocks(net(xin), len(data))                               # [M, bs, K]
        loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="sum",
                               label_smoothing=cfg.label_smoothing) / cfg.batch_size
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    if len(y) == 0:
        return float("nan")
    pred = model.eval()(torch.as_tensor(x)).argmax(1).numpy()
    return float((pred == y).mean() * 100)


def max_weight_diff(a: nn.Module, b: nn.Module) -> float:
    """Largest absolute difference between two models' matching parameters and buffers."""
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa if sa[k].is_floating_point())
