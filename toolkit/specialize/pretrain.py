"""Compression-based self-supervised pretraining: the encoder learns to reconstruct its input.

The encoder is the model up to its classifier head (the features entering the last Linear). A small
decoder maps those features through a `bottleneck`-sized code back to the whole input. Objective
"masked" hides random spans of time frames and asks for the full input back (fill the gaps);
"bottleneck" reconstructs the untouched input. Only unlabelled training inputs are used; the
decoder is thrown away and the encoder initialises supervised fine-tuning on few labels.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.data.base import TaskData
from toolkit.errors import EdgetkError
from toolkit.recipe import PretrainConfig, TrainConfig

log = logging.getLogger(__name__)
OBJECTIVES = ("masked", "bottleneck")


def few_labels(data: TaskData, per_class: int, seed: int) -> TaskData:
    """The same task with only `per_class` labelled training examples per class (stratified, seeded)."""
    if per_class <= 0:
        return data
    keep = few_label_index(data, per_class, seed)
    groups = data.groups_train[keep] if data.groups_train is not None else None
    return dataclasses.replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep], groups_train=groups)


def few_label_index(data: TaskData, per_class: int, seed: int) -> np.ndarray:
    """The sorted training indices few_labels keeps."""
    rng = np.random.default_rng([seed, 17])
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(data.y_train == c))[:per_class]
                                   for c in np.unique(data.y_train)]))


def time_axis(input_shape: tuple[int, ...]) -> int:
    """The time axis of an NCHW sample batch: the longer spatial axis (49 frames of [1, 49, 10], L of [C, 1, L])."""
    return 2 if input_shape[1] >= input_shape[2] else 3


def mask_spans(x: torch.Tensor, ratio: float, span: int, gen: torch.Generator) -> torch.Tensor:
    """A boolean mask over x's time axis hiding about `ratio` of the frames in spans of `span` frames."""
    axis = time_axis(tuple(x.shape[1:]))
    frames = x.shape[axis]
    n_spans = max(1, math.ceil(ratio * frames / span))
    starts = torch.randint(0, max(1, frames - span + 1), (x.shape[0], n_spans), generator=gen)
    hidden = torch.zeros(x.shape[0], frames, dtype=torch.bool)
    for k in range(span):
        hidden.scatter_(1, (starts + k).clamp(max=frames - 1), True)
    shape = [x.shape[0], 1, 1, 1]
    shape[axis] = frames
    return hidden.view(shape).expand_as(x)


class Reconstructor(nn.Module):
    """Encoder features [N, F] -> code [N, bottleneck] -> input-shaped reconstruction."""

    def __init__(self, features: int, bottleneck: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.input_shape = input_shape
        self.net = nn.Sequential(nn.Linear(features, bottleneck), nn.ReLU(), nn.Linear(bottleneck, math.prod(input_shape)))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f).view(-1, *self.input_shape)


def encoder_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The features entering the model's classifier head (its last Linear layer)."""
    from toolkit.specialize.peft import head_of

    got: list[torch.Tensor] = []
    handle = head_of(model).register_forward_pre_hook(lambda _m, args: got.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    return got[0]


def pretrain_encoder(model: nn.Module, x_unlabelled: np.ndarray, cfg: PretrainConfig, train: TrainConfig,
                     ckpt: Path | None = None) -> list[float]:
    """Train the model's encoder (in place) to reconstruct its inputs; returns the loss per epoch.

    With `ckpt`, the loop saves its state there after every epoch and continues from it when it exists.
    """
    from toolkit.train.checkpoint import resume_loop, save_loop
    from toolkit.train.trainer import batches, channels_last_grads, make_optimizer, make_scheduler, memory_format

    if cfg.objective not in OBJECTIVES:
        raise EdgetkError(f"[pretrain] objective = {cfg.objective!r} is not known", fix=f"use one of {OBJECTIVES}")
    x_all = torch.from_numpy(x_unlabelled)
    feats = encoder_features(model.eval(), x_all[:2]).shape[1]
    both = nn.ModuleList([model, Reconstructor(feats, cfg.bottleneck, tuple(x_all.shape[1:]))])  # encoder, decoder
    tcfg = dataclasses.replace(train, epochs=cfg.epochs, lr=cfg.lr)
    fmt = memory_format(model, x_unlabelled)
    model.to(memory_format=fmt)
    steps = len(batches(len(x_all), tcfg.batch_size, tcfg.seed, 0))
    opt = make_optimizer(tcfg, list(both.parameters()))
    sched = make_scheduler(tcfg, opt, tcfg.epochs * steps)
    gen = torch.Generator().manual_seed(train.seed)
    state = resume_loop(ckpt, both, opt, sched, [gen])
    history = list(state.get("history", []))
    for epoch in range(state.get("epoch", 0), tcfg.epochs):
        with channels_last_grads(model, fmt):
            history.append(_pretrain_epoch(model, both[1], opt, sched, x_all, tcfg, cfg, epoch, gen, fmt))
        log.info("pretrain epoch %d/%d: reconstruction loss %.4f", epoch + 1, tcfg.epochs, history[-1])
        if ckpt is not None:
            save_loop(ckpt, both, opt, sched, epoch + 1, [gen], history=history)
    model.to(memory_format=torch.contiguous_format).eval()
    return history


def _pretrain_epoch(model, decoder, opt, sched, x_all, tcfg: TrainConfig, cfg: PretrainConfig, epoch: int, gen,
                    fmt: torch.memory_format) -> float:
    from toolkit.train.trainer import batches

    model.train()
    total = 0.0
    idx_all = batches(len(x_all), tcfg.batch_size, tcfg.seed, epoch)
    for idx in idx_all:
        x = x_all[torch.from_numpy(idx)]
        inp = x
        if cfg.objective == "masked":
            inp = x.masked_fill(mask_spans(x, cfg.mask_ratio, cfg.mask_span, gen), 0.0)
        loss = F.mse_loss(decoder(encoder_features(model, inp.contiguous(memory_format=fmt))), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach())
    return total / max(1, len(idx_all))
