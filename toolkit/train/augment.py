"""Training-time augmentation of input batches: `[train] augment = ["shift", "noise", "mask", "gain"]`.

Applied per batch in the trainer's epoch loop (toolkit/train/trainer.py `train_epoch`, through `augmented_batches`:
a chunk of batches at a time, the same bits as batch by batch), so `edgetk train` on any recipe and the in-memory
trainer of dataset distillation (`distill_data.fit`) use the same code. Inputs are the
model's input layout [N, C, L, ...]; the augmented axis is the first one after the channels (L): time frames for
MFCC clips [1, frames, coefficients] and for sensor windows [channels, samples], rows for images. Per sample:

- shift: move the sample along L by a whole number of steps drawn uniformly from [-L/6, L/6], zero fill;
- noise: add Gaussian noise of 0.15 x the batch's standard deviation (inputs are normalised, so ~0.15);
- mask:  zero one block of L/8 consecutive steps at a random position (SpecAugment-style time mask);
- gain:  multiply the sample by a factor drawn uniformly from [0.8, 1.2].

The draws come from a torch.Generator seeded from (train.seed, epoch) alone, not from torch's global generator:
an empty list (the default) changes nothing (the same bits as without this module), and a run resumed after an
epoch draws what the uninterrupted run drew. Every operation is differentiable in the input, so dataset
distillation uses the same family on its synthetic samples (`draw` once, `apply` to the real and the synthetic
batch: the same shift, mask and gain on both, Zhao & Bilen's siamese augmentation).
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from toolkit.recipe import AUGMENTS as NAMES  # noqa: F401  (the names, for callers; checked by recipe.check_augment)

SHIFT = 1 / 6      # largest shift, share of the axis
NOISE = 0.15       # noise std, share of the batch's std
MASK = 1 / 8       # masked block, share of the axis
GAIN = (0.8, 1.2)


def generator(seed: int, epoch: int):
    """The epoch's augmentation generator: a pure function of (seed, epoch)."""
    import torch

    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919 + 0x5EED) % (1 << 63))


def draw(names: Sequence[str], shape: Sequence[int], n: int, gen) -> dict[str, Any]:
    """Random parameters for n samples of per-sample shape `shape` ([C, L, ...]); n = 1 broadcasts to any batch."""
    import torch

    length = int(shape[1])
    out: dict[str, Any] = {"names": tuple(names)}
    if "shift" in names:
        lim = max(1, int(length * SHIFT)) if length > 4 else 0
        out["shift"] = torch.randint(-lim, lim + 1, (n,), generator=gen)
    if "mask" in names:
        width = max(1, int(length * MASK))
        out["mask"] = (torch.randint(0, max(1, length - width + 1), (n,), generator=gen), width)
    if "gain" in names:
        out["gain"] = GAIN[0] + (GAIN[1] - GAIN[0]) * torch.rand((n,), generator=gen)
    return out


def apply(x, params: dict[str, Any], gen):
    """x [N, C, L, ...] augmented with `params` (from draw; noise is drawn here from gen), differentiable in x."""
    import torch

    if not params["names"]:
        return x
    x = _per_sample(x, params)
    if "noise" in params["names"]:
        std = x.detach().std() if x.numel() > 1 else torch.ones((), dtype=x.dtype)
        x = x + NOISE * std * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    return x


def _per_sample(x, params: dict[str, Any]):
    """apply's shift, mask and gain: each sample's own values, whatever batch it sits in."""
    import torch

    names = params["names"]
    length = x.shape[2]
    view = (-1, 1, length) + (1,) * (x.dim() - 3)          # per-sample values along L
    steps = torch.arange(length)
    if "shift" in names:
        src = steps[None, :] - params["shift"][:, None]       # out[t] = x[t - s]
        keep = ((src >= 0) & (src < length)).to(x.dtype)
        idx = src.clamp(0, length - 1).expand(x.shape[0], length).reshape(view).expand(x.shape)
        x = torch.gather(x, 2, idx) * keep.expand(x.shape[0], length).reshape(view)
    if "mask" in names:
        start, width = params["mask"]
        hidden = (steps[None, :] >= start[:, None]) & (steps[None, :] < start[:, None] + width)
        x = x * (~hidden).to(x.dtype).expand(x.shape[0], length).reshape(view)
    if "gain" in names:
        x = x * params["gain"].to(x.dtype).reshape((-1,) + (1,) * (x.dim() - 1))
    return x


def augment(x, names: Sequence[str], gen):
    """A batch x [N, C, L, ...] with independent draws per sample."""
    return apply(x, draw(names, x.shape[1:], x.shape[0], gen), gen) if names else x


def augmented_batches(x, batches: Sequence, names: Sequence[str], gen, chunk_bytes: int = 32 << 20) -> Iterator:
    """The training batches x[b] for b in `batches` (index arrays), each augmented: the same bits and the same
    draws from gen as `augment(x[b], names, gen)` batch after batch, computed a chunk of batches (whole batches,
    up to `chunk_bytes` of samples; at least one batch) at a time. One batch's augmentation is ~20 small torch
    ops, ~0.25 ms: a third of the fused kernel's whole training step; a chunk pays them once. Per batch stay only
    the draws (in the same order) and the noise's scale, the batch's own standard deviation."""
    import numpy as np
    import torch

    chunk = max(1, chunk_bytes // max(1, x[0].numel() * x.element_size())) if len(x) else 1
    i = 0
    while i < len(batches):
        j, n = i + 1, len(batches[i])                      # whole batches up to `chunk` samples, at least one
        while j < len(batches) and n + len(batches[j]) <= chunk:
            n, j = n + len(batches[j]), j + 1
        sizes = [len(b) for b in batches[i:j]]
        xs = x[torch.from_numpy(np.concatenate(batches[i:j]))]
        yield from torch.split(_augment_chunk(xs, sizes, names, gen) if names else xs, sizes)
        i = j


def _augment_chunk(xs, sizes: list[int], names: Sequence[str], gen):
    """augmented_batches' work on one chunk of consecutive batches (their sizes)."""
    import torch

    draws, noise = [], []
    for size in sizes:                                  # the draws of augment() batch by batch, in its order
        draws.append(draw(names, xs.shape[1:], size, gen))
        if "noise" in names:
            noise.append(torch.randn((size, *xs.shape[1:]), generator=gen, dtype=xs.dtype))
    params = {"names": tuple(names)}
    for key in ("shift", "gain"):
        if key in names:
            params[key] = torch.cat([d[key] for d in draws])
    if "mask" in names:
        params["mask"] = (torch.cat([d["mask"][0] for d in draws]), draws[0]["mask"][1])
    xs = _per_sample(xs, params)
    if "noise" in names:                                # each batch's own std, as apply() takes it
        ones = torch.ones((), dtype=xs.dtype)
        scale = torch.cat([(NOISE * (p.std() if p.numel() > 1 else ones)).expand(len(p))
                           for p in torch.split(xs, sizes)])
        xs = xs + scale.reshape((-1,) + (1,) * (xs.dim() - 1)) * torch.cat(noise)
    return xs
