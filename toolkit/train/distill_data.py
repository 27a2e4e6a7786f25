"""Dataset distillation: a few synthetic samples per class that train a fresh model of the recipe's architecture.

Method "dm" (default), distribution matching (Zhao & Bilen, "Dataset Condensation with Distribution
Matching", WACV 2023): each iteration draws a freshly initialised network of the recipe's architecture and
moves the synthetic samples so that, per class, the mean of their embeddings (the features entering the
classifier head) equals the mean embedding of a batch of real samples of that class. No network is
trained and no second-order gradient is taken, so one iteration costs two forward passes and one
backward pass: minutes on one CPU core. It is the default because it is the cheapest of the published
methods whose gains on digit datasets match gradient matching at 10 samples per class.

Method "gm", gradient matching (Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching",
ICLR 2021): the synthetic samples are moved so that the training gradient they give a network equals the
gradient real samples of the same class give it, while the network itself trains on the synthetic set
(inner loop). Second-order, several times dearer per iteration; published as stronger at 1 sample per class.

Method "recover" (SRe2L, Yin, Xing & Shen, NeurIPS 2023): a model of the recipe trained on the real set (the
teacher) stays fixed; the samples move so that it gives them their class under cross-entropy and each of its
BatchNorm layers sees, over the synthetic batch, the per-channel mean and variance it stored for real data (its
running statistics). Aimed at kws-digits' failure below (BatchNorm statistics); pair it with soft labels (SRe2L's
relabel). Measured on kws-digits: below dm (bench/RESULTS.md).

Method "kmeans": the k-means centroids of each class' training samples (k = N; `centroid_init`), no optimisation:
averages of real clips, not real clips. On kws-digits at N = 10 it beats dm (bench/RESULTS.md).

Options (measured on kws-digits, where dm loses to the real samples it starts from; bench/RESULTS.md):
- soft labels (`soft` = temperature T > 0; Bohdal et al. 2020, Qin et al. 2024): a model of the recipe trained
  on the real set labels each synthetic sample with softmax(logits / T); the npz stores them (`soft` column) and the
  trainer's cross-entropy takes them as targets, so `edgetk train OUT/recipe.toml` trains on them too. The bench
  prints the same teacher's soft labels on the random real samples beside it (where a gain comes from).
- nets = "trained": dm under the per-epoch snapshots of that trained model instead of random nets (after Zhao et
  al., "Improved Distribution Matching", CVPR 2023).
- smooth = F: the samples move by a change on an F-times coarser grid, bilinearly upsampled (no fine-grained
  perturbation can form).
None of them made kws-digits' synthetic set beat the random real samples without augmentation (one-seed probes in
bench/RESULTS.md): the drop is mostly the trained model's BatchNorm statistics, which the synthetic clips set away
from real ones (N = 10: 55.0 % -> 75.0 % when the same model's BatchNorm statistics are recomputed on real clips).
What works there (3 seeds, both widths, bench/RESULTS.md): `[train] augment = ["shift", "noise", "mask", "gain"]`
on every small-set arm, and dm started from the class means (init = "centroids") at N = 1 (+20 points over random
real clips), the k-means centroids themselves (method "kmeans") at N = 10 (+9 to +10).
On image-digits dm beats random real images by 24 points at N = 1 and 5 at N = 10, also at another width.

All start from real samples of each class (seeded), or with init = "centroids" from the k-means centroids of each
class' samples (one per class: the class mean). dm and gm apply the same random draw to the real and the
synthetic batch in an iteration (differentiable siamese augmentation, Zhao & Bilen, ICML 2021): the recipe's
`[train] augment` family when it names one (toolkit/train/augment.py: shift, noise, mask, gain along the time
axis; the written recipe keeps it, so a model trained on the set gets the same augmentation), else a shift of up
to 1/8 of each axis (label-preserving for images and MFCC frames). recover draws per sample from the same family. The random networks run in eval mode:
their BatchNorm layers are the identity at initialisation, so per-class batches need no shared statistics.

The job writes OUT/synthetic.npz (the synthetic training samples, split "train", and the real test set's
features, split "test", so a model trained on it is measured on real data), OUT/samples.png,
OUT/distill.json (how it was made) and OUT/recipe.toml (the recipe, reading synthetic.npz:
`edgetk train OUT/recipe.toml -o RUN` trains a fresh model without the raw recordings).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolkit.data.base import TaskData
from toolkit.errors import EdgetkError
from toolkit.recipe import Recipe

log = logging.getLogger(__name__)
METHODS = ("dm", "gm", "recover", "kmeans")
NETS = ("random", "trained")
INITS = ("real", "centroids")
DEFAULT_ITERATIONS = {"dm": 300, "gm": 100, "recover": 500, "kmeans": 0}
DEFAULT_LR = {"dm": 0.05, "gm": 0.05, "recover": 0.05, "kmeans": 0.0}
RECOVER_BN = 1.0  # recover: weight of the BatchNorm-statistics term beside the teacher's cross-entropy
MIN_STEPS = 300   # optimizer steps a model trained on a synthetic set gets at least (N x classes samples are few)


@dataclass(frozen=True)
class DistillDataConfig:
    """How a synthetic set is made."""

    per_class: int = 10        # synthetic samples per class
    method: str = "dm"         # dm (distribution matching) | gm (gradient matching) | recover (SRe2L, a trained teacher)
    iterations: int = 0        # 0 = the method's default (dm 300, gm 100)
    lr: float = 0.0            # step size on the samples; 0 = the method's default (dm: Adam 0.05; gm: SGD 0.05, momentum 0.5)
    width: float = 0.0         # width of the random networks; 0 = the recipe's model.width
    real_batch: int = 64       # real samples per class per iteration
    augment: bool = True       # the same random draw on real and synthetic batches: the recipe's train.augment
                               # family when it names one (toolkit/train/augment.py), else a shift
    layers: bool = False       # dm: match every BatchNorm input's statistics too, not only the final embedding
    nets: str = "random"       # dm: embeddings of fresh random nets | "trained": snapshots of a model trained on the real set
    smooth: int = 1            # dm: > 1 = the samples move by a change on a grid this many times coarser, upsampled
    init: str = "real"         # start: real = random real samples of each class | centroids = their k-means centroids
    soft: float = 0.0          # > 0: soft labels, the trained model's softmax(logits / soft) per synthetic sample; 0: hard
    seed: int = 0

    def resolved(self) -> DistillDataConfig:
        """The config with the method's defaults filled in (validated first)."""
        check_config(self)
        return dataclasses.replace(self, iterations=self.iterations or DEFAULT_ITERATIONS[self.method],
                                   lr=self.lr or DEFAULT_LR[self.method])


def check_config(cfg: DistillDataConfig) -> None:
    """One EdgetkError for a config that cannot run."""
    from toolkit.recipe import check_choice

    check_choice("distill-data", "method", cfg.method, METHODS)
    check_choice("distill-data", "nets", cfg.nets, NETS)
    check_choice("distill-data", "init", cfg.init, INITS)
    for name, low in (("per_class", 1), ("iterations", 0), ("real_batch", 1), ("seed", 0), ("smooth", 1)):
        v = getattr(cfg, name)
        if v < low:
            raise EdgetkError(f"distill-data: {name.replace('_', '-')} = {v} is below {low}",
                              fix=f"pass --{name.replace('_', '-')} {max(low, 1)} or more")
    for name in ("lr", "width", "soft"):
        v = getattr(cfg, name)
        if not (math.isfinite(v) and 0 <= v <= 64):
            raise EdgetkError(f"distill-data: {name} = {v} is outside [0, 64]", fix=f"pass a {name} in (0, 64], or 0 for the default")


@dataclass(frozen=True)
class Synthetic:
    """A distilled set: samples x [N*C, ...] (model input layout), labels y, and how it was made."""

    x: np.ndarray
    y: np.ndarray
    meta: dict[str, Any]
    soft: np.ndarray | None = None     # soft labels [N*C, classes] (cfg.soft > 0), else None
    teacher: Any = None                # the model trained on the real set (nets = "trained" or soft labels), eval mode


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the resolved recipe's TOML (which recipe a synthetic set belongs to)."""
    return hashlib.sha256(recipe.to_toml().encode()).hexdigest()


def real_init(data: TaskData, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` random real training samples of every class (seeded): the synthetic set's start, and the baseline."""
    rng = np.random.default_rng([seed, 23])
    xs, ys = [], []
    for c in range(data.n_classes):
        idx = np.flatnonzero(data.y_train == c)
        if len(idx) < per_class:
            raise EdgetkError(f"class {data.labels[c]!r} has {len(idx)} training samples, fewer than --per-class {per_class}",
                              fix=f"pass --per-class {max(1, len(idx))} or less")
        pick = rng.choice(idx, per_class, replace=False)
        xs.append(data.x_train[pick])
        ys.append(np.full(per_class, c, np.int64))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def centroid_init(data: TaskData, per_class: int, seed: int, rounds: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the k-means centroids (k = per_class; Lloyd's algorithm, `rounds` rounds) of its training samples,
    started at real_init's samples: one sample per class = the class mean. A start that already holds the class'
    average (kws-digits, N = 1, seed 0: 35.3 % trained on the 10 class means vs 24.3 % on 10 random clips)."""
    x0, y = real_init(data, per_class, seed)
    out = []
    for c in range(data.n_classes):
        x = data.x_train[data.y_train == c].reshape(int((data.y_train == c).sum()), -1).astype(np.float64)
        cen = x0[y == c].reshape(per_class, -1).astype(np.float64)
        for _ in range(rounds):
            near = ((x * x).sum(1)[:, None] - 2 * x @ cen.T + (cen * cen).sum(1)[None]).argmin(1)
            cen = np.stack([x[near == j].mean(0) if (near == j).any() else cen[j] for j in range(per_class)])
        out.append(cen.reshape(per_class, *data.x_train.shape[1:]))
    return np.concatenate(out).astype(np.float32), y


def distill(recipe: Recipe, data: TaskData, cfg: DistillDataConfig,
            progress: Callable[[int, float], None] | None = None, teacher: Any = None) -> Synthetic:
    """Synthesize cfg.per_class samples per class for the recipe's architecture (cfg.method). `teacher`: a model
    already trained on data that gives the soft labels (cfg.soft > 0) instead of one trained here."""
    import torch

    cfg = cfg.resolved()
    if data.kind != "classification":
        raise EdgetkError(f"dataset distillation needs a classification task; {data.name} is {data.kind}",
                          fix="use a classification recipe (e.g. models/kws-digits.toml)")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, recipe.train.threads))
    t0 = time.monotonic()
    try:
        from_centroids = cfg.init == "centroids" or cfg.method == "kmeans"
        x0, y = (centroid_init if from_centroids else real_init)(data, cfg.per_class, cfg.seed)
        snaps: list[dict] = []
        teacher_acc = None
        if cfg.nets == "trained" or ((cfg.soft > 0 or cfg.method == "recover") and teacher is None):
            teacher, snaps, teacher_acc = _teacher(recipe, data, cfg)
        if cfg.method == "dm":
            x, losses = _dm(recipe, data, cfg, x0, progress, snaps)
        elif cfg.method == "gm":
            x, losses = _gm(recipe, data, cfg, x0, progress)
        elif cfg.method == "kmeans":          # the centroids themselves, no optimisation
            x, losses = x0, []
        else:
            x, losses = _recover(recipe, data, cfg, x0, progress, teacher)
        soft = soft_labels(teacher, x, cfg.soft) if cfg.soft > 0 else None
    finally:
        torch.set_num_threads(threads)
    width = cfg.width or recipe.model.width
    meta = {"method": cfg.method, "per_class": cfg.per_class, "recipe_sha256": recipe_hash(recipe), "task": recipe.task,
            "arch": recipe.model.arch, "width": width, "iterations": cfg.iterations, "lr": cfg.lr,
            "real_batch": cfg.real_batch, "augment": cfg.augment, "augment_family": list(_family(recipe, cfg)),
            "train_augment": list(recipe.train.augment), "seed": cfg.seed,
            "init": "k-means centroids of each class" if from_centroids else "real samples of each class",
            "nets": cfg.nets, "smooth": cfg.smooth, "label_kind": f"soft (temperature {cfg.soft})" if cfg.soft > 0 else "hard",
            "teacher_test_value": teacher_acc, "snapshots": len(snaps),
            "seconds": round(time.monotonic() - t0, 2), "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None, "labels": list(data.labels),
            "input_shape": list(data.input_shape), "n_train_real": int(len(data.x_train))}
    return Synthetic(x.astype(np.float32), y, meta, soft, teacher)


def _teacher(recipe: Recipe, data: TaskData, cfg: DistillDataConfig) -> tuple[Any, list[dict], float]:
    """A model of the recipe (at the synthesis width, seed cfg.seed) trained on the real training set, its
    state after every epoch (the "trained" nets: partially to fully trained, as in Zhao et al. 2023's improved
    distribution matching) and its test value."""
    import copy

    width = cfg.width or recipe.model.width
    r = recipe.replace(model=dataclasses.replace(recipe.model, width=width),
                       train=dataclasses.replace(recipe.train, seed=cfg.seed))
    snaps: list[dict] = []
    model, value = fit(r, data, on_epoch=lambda _e, m: snaps.append(copy.deepcopy(m.state_dict())))
    return model, snaps, round(float(value), 4)


def soft_labels(teacher: Any, x: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(teacher(x) / temperature) per sample, float32 [N, classes]."""
    import torch

    with torch.no_grad():
        return torch.softmax(teacher.eval()(torch.from_numpy(x.astype(np.float32))) / temperature, 1).numpy()


def _random_net(recipe: Recipe, data: TaskData, width: float, seed: int):
    import torch

    from toolkit.nn import build_model

    torch.manual_seed(seed)
    net = build_model(recipe.replace(model=dataclasses.replace(recipe.model, width=width, dropout=0.0)), data)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def _real_batches(data: TaskData, per_class: int, rng: np.random.Generator):
    """One batch of real samples per class, as a list of tensors."""
    import torch

    out = []
    for c in range(data.n_classes):
        idx = np.flatnonzero(data.y_train == c)
        out.append(torch.from_numpy(data.x_train[rng.choice(idx, min(per_class, len(idx)), replace=False)]))
    return out


def shift(x, dy: int, dx: int):
    """Shift a [N, C, H, W] batch by (dy, dx) with zero fill (differentiable in x)."""
    import torch.nn.functional as F

    h, w = x.shape[2], x.shape[3]
    x = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    return x[:, :, max(-dy, 0):max(-dy, 0) + h, max(-dx, 0):max(-dx, 0) + w]


def _draw_shift(shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, int]:
    """A random shift of up to 1/8 of each spatial axis (at least one step where the axis has more than 4)."""
    lim = [max(1, n // 8) if n > 4 else 0 for n in shape[-2:]]
    return int(rng.integers(-lim[0], lim[0] + 1)), int(rng.integers(-lim[1], lim[1] + 1))


def _family(recipe: Recipe, cfg: DistillDataConfig) -> tuple[str, ...]:
    """The synthesis' augmentation: the recipe's train.augment family when it names one, else a shift; () when off."""
    return (recipe.train.augment or ("shift",)) if cfg.augment else ()


def _siamese(recipe: Recipe, data: TaskData, cfg: DistillDataConfig, rng: np.random.Generator, gen) -> Callable:
    """One iteration's augmentation, the same draw for every batch it is applied to (Zhao & Bilen's siamese
    augmentation): the recipe's train.augment family (shift, noise, mask, gain; toolkit/train/augment.py) when it
    names one, else a shift of up to 1/8 of each spatial axis; the identity with cfg.augment off."""
    from toolkit.train import augment

    if cfg.augment and recipe.train.augment:
        params = augment.draw(recipe.train.augment, data.input_shape, 1, gen)
        return lambda x: augment.apply(x, params, gen)
    dy, dx = _draw_shift(data.input_shape, rng) if cfg.augment else (0, 0)
    return lambda x: shift(x, dy, dx)


def _dm(recipe: Recipe, data: TaskData, cfg: DistillDataConfig, x0: np.ndarray, progress,
        snaps: list[dict]) -> tuple[np.ndarray, list[float]]:
    """Distribution matching under random nets (or, nets = "trained", a random one of the trained model's
    per-epoch snapshots `snaps`): per class, the mean embedding (and, with cfg.layers, every
    BatchNorm input's per-channel mean) of the synthetic samples = that of real ones; with cfg.layers also each
    BatchNorm input's per-channel variance over all classes (so a model trained on the set learns real statistics)."""
    import torch

    import torch.nn.functional as F

    n, k = data.n_classes, cfg.per_class
    h, w = x0.shape[-2:]
    if cfg.smooth == 1:       # the samples themselves move
        syn = torch.tensor(x0, requires_grad=True)
        opt = torch.optim.Adam([syn], lr=cfg.lr)

        def current():
            return syn
    else:                     # a change on a coarse grid, upsampled, moves them
        base = torch.from_numpy(x0)
        delta = torch.zeros((*x0.shape[:-2], math.ceil(h / cfg.smooth), math.ceil(w / cfg.smooth)), requires_grad=True)
        opt = torch.optim.Adam([delta], lr=cfg.lr)

        def current():
            return base + F.interpolate(delta, size=(h, w), mode="bilinear", align_corners=True)

    rng = np.random.default_rng([cfg.seed, 29])
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 29)
    width, losses = cfg.width or recipe.model.width, []
    trained = [_random_net(recipe, data, width, 0) for _ in snaps] if cfg.nets == "trained" else []
    for net, state in zip(trained, snaps):
        net.load_state_dict(state)
    for it in range(cfg.iterations):
        net = (trained[int(rng.integers(len(trained)))] if trained
               else _random_net(recipe, data, width, cfg.seed * 1_000_003 + it))
        real = torch.cat(_real_batches(data, cfg.real_batch, rng))
        aug = _siamese(recipe, data, cfg, rng, gen)
        with torch.no_grad():
            target = _statistics(net, aug(real), n, cfg.layers)
        got = _statistics(net, aug(current()), n, cfg.layers)
        loss = sum((t - g).pow(2).sum() / t.pow(2).sum().clamp_min(1e-12) for t, g in zip(target, got)) / len(got)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(it, losses[-1])
    with torch.no_grad():
        return current().detach().clone().numpy(), losses


def _statistics(net, x, n_classes: int, layers: bool) -> list:
    """Per-class mean embeddings [classes, F] (x holds the classes in equal consecutive blocks), and with
    `layers` per BatchNorm input its per-class channel means [classes, ch] and its channel variances [ch]."""
    from torch import nn

    from toolkit.specialize.pretrain import encoder_features

    seen: list = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[0])) for m in net.modules()
             if layers and isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        emb = encoder_features(net, x)
    finally:
        for h in hooks:
            h.remove()
    out = [emb.reshape(n_classes, -1, emb.shape[1]).mean(1)]
    for f in seen:
        per = f.reshape(n_classes, -1, f.shape[1], f[0, 0].numel())        # [classes, k, ch, positions]
        out.append(per.mean((1, 3)))
        out.append(per.transpose(0, 2).reshape(f.shape[1], -1).var(1))
    return out


def _gm(recipe: Recipe, data: TaskData, cfg: DistillDataConfig, x0: np.ndarray, progress) -> tuple[np.ndarray, list[float]]:
    """Gradient matching: per class, the synthetic samples' loss gradient = the real samples', on nets that train on them."""
    import torch
    import torch.nn.functional as F

    n, k = data.n_classes, cfg.per_class
    syn = torch.tensor(x0, requires_grad=True)
    y_syn = torch.arange(n).repeat_interleave(k)
    opt = torch.optim.SGD([syn], lr=cfg.lr, momentum=0.5)
    rng = np.random.default_rng([cfg.seed, 31])
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 31)
    width, losses = cfg.width or recipe.model.width, []
    outer, inner = max(1, cfg.iterations // 10), 10
    for o in range(outer):
        net = _random_net(recipe, data, width, cfg.seed * 1_000_003 + o)
        params = list(net.parameters())
        for p in params:
            p.requires_grad_(True)
        net_opt = torch.optim.SGD(params, lr=0.01)
        for it in range(inner):
            real = _real_batches(data, cfg.real_batch, rng)
            aug = _siamese(recipe, data, cfg, rng, gen)
            loss = torch.zeros(())
            for c in range(n):
                g_real = torch.autograd.grad(F.cross_entropy(net(aug(real[c])), torch.full((len(real[c]),), c)), params)
                s = aug(syn[c * k:(c + 1) * k])
                g_syn = torch.autograd.grad(F.cross_entropy(net(s), y_syn[c * k:(c + 1) * k]), params, create_graph=True)
                loss = loss + sum(_grad_distance(a.detach(), b) for a, b in zip(g_real, g_syn))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(o * inner + it, losses[-1])
            net_opt.zero_grad(set_to_none=True)           # the net learns on the current synthetic set
            F.cross_entropy(net(syn.detach()), y_syn).backward()
            net_opt.step()
    return syn.detach().numpy(), losses


def _recover(recipe: Recipe, data: TaskData, cfg: DistillDataConfig, x0: np.ndarray, progress,
             teacher) -> tuple[np.ndarray, list[float]]:
    """SRe2L's "recover" (Yin, Xing & Shen, NeurIPS 2023): the samples move so that the trained teacher gives them
    their class (cross-entropy) AND each of its BatchNorm layers sees, on the whole synthetic batch, the per-channel
    mean and variance it stored for real data (its running statistics), under the augmentation family (independent
    draws per sample). Pair it with the teacher's soft labels (--soft-labels, SRe2L's relabel)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from toolkit.train import augment

    n, k = data.n_classes, cfg.per_class
    syn = torch.tensor(x0, requires_grad=True)
    y = torch.arange(n).repeat_interleave(k)
    opt = torch.optim.Adam([syn], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 37)
    rng = np.random.default_rng([cfg.seed, 37])
    teacher = teacher.eval()
    bns = [m for m in teacher.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    seen: list = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[0])) for m in bns]
    losses: list[float] = []
    try:
        for it in range(cfg.iterations):
            xa = (augment.augment(syn, recipe.train.augment, gen) if cfg.augment and recipe.train.augment
                  else _siamese(recipe, data, cfg, rng, gen)(syn))
            seen.clear()
            ce = F.cross_entropy(teacher(xa), y)
            stat = sum(_bn_mismatch(f, m) for f, m in zip(seen, bns))
            loss = ce + RECOVER_BN * stat / max(1, len(bns))
            opt.zero_grad(set_to_none=True)
            syn.grad, = torch.autograd.grad(loss, [syn])
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(it, losses[-1])
    finally:
        for h in hooks:
            h.remove()
    return syn.detach().clone().numpy(), losses


def _bn_mismatch(f, bn):
    """Squared distance of a BatchNorm input's per-channel batch mean and variance from the layer's running ones."""
    per_channel = f.transpose(0, 1).reshape(f.shape[1], -1)
    return ((per_channel.mean(1) - bn.running_mean).pow(2).sum()
            + (per_channel.var(1, unbiased=False) - bn.running_var).pow(2).sum())


def _grad_distance(a, b):
    """Zhao et al.'s layer-wise distance: sum over output channels of 1 - cosine (biases and norms: skipped)."""
    if a.dim() == 1:
        return b.sum() * 0.0
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return (1 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-6)).sum()


def training_schedule(recipe: Recipe, n_samples: int) -> Recipe:
    """The recipe's training settings for a set of n_samples: batch <= n_samples, at least MIN_STEPS steps."""
    batch = max(2, min(recipe.train.batch_size, n_samples))
    steps_per_epoch = max(1, n_samples // batch)
    epochs = max(recipe.train.epochs, math.ceil(MIN_STEPS / steps_per_epoch))
    return recipe.replace(train=dataclasses.replace(recipe.train, batch_size=batch, epochs=epochs))


def with_train_set(data: TaskData, x: np.ndarray, y: np.ndarray, soft: np.ndarray | None = None) -> TaskData:
    """The task with its training set replaced (the test set stays real); `soft`: soft labels [N, classes] the
    trainer's cross-entropy uses instead of y."""
    return dataclasses.replace(data, x_train=x.astype(np.float32), y_train=y.astype(np.int64), groups_train=None,
                               ids_train=None, raw_train=None,
                               soft_train=None if soft is None else soft.astype(np.float32), soft_test=None)


def fit(recipe: Recipe, data: TaskData, loss_fn: Any = None,
        on_epoch: Callable[[int, Any], None] | None = None) -> tuple[Any, float]:
    """Train a fresh model of the recipe on data in memory, as `edgetk train` would (same seed, schedule and steps),
    without its per-epoch checkpoint and test pass, and with the for-loop optimizer rather than train()'s fused
    kernel (bench/RESULTS.md's figures were measured so; the two differ in the last bits). Returns (model, test
    metric value); `on_epoch(epoch, model)` runs after each epoch (model in training layout and mode)."""
    import torch

    from toolkit.nn import build_model
    from toolkit.train.evaluate import evaluate
    from toolkit.train.trainer import (batches, channels_last_grads, default_loss, determinism, make_optimizer,
                                       make_scheduler, memory_format, train_epoch, trainable)

    cfg = recipe.train
    with determinism(cfg):
        model = build_model(recipe, data)
        fmt = memory_format(model, data.x_train)
        model.to(memory_format=fmt)
        opt = make_optimizer(cfg, trainable(model, None))
        sched = make_scheduler(cfg, opt, cfg.epochs * len(batches(len(data.x_train), cfg.batch_size, cfg.seed, 0)))
        loss_fn = loss_fn or default_loss(data.kind, cfg.label_smoothing)
        for epoch in range(cfg.epochs):
            with channels_last_grads(model, fmt):
                train_epoch(model, opt, sched, data, cfg, epoch, loss_fn, fmt)
            if on_epoch is not None:
                on_epoch(epoch, model)
        model.to(memory_format=torch.contiguous_format).eval()
        return model, float(evaluate(model, data)["value"])


def npz_recipe(recipe: Recipe, npz_name: str, n_samples: int) -> Recipe:
    """The recipe reading the synthetic npz (already features: no [frontend], no normalisation) with its schedule."""
    from toolkit.recipe import DataConfig

    data = DataConfig(format="npz", root=npz_name, split="folders", normalize="none")
    extra = {k: v for k, v in recipe.extra.items() if k != "frontend"}
    r = recipe.replace(data=data, extra=extra, path="",
                       description=f"{recipe.task} trained on a distilled set ({npz_name}); from: {recipe.description}")
    return training_schedule(r, n_samples)


def write(out: Path, recipe: Recipe, data: TaskData, syn: Synthetic) -> dict[str, Any]:
    """OUT/synthetic.npz, OUT/samples.png, OUT/recipe.toml, OUT/distill.json; returns the record."""
    from toolkit.fsio import atomic_write_bytes, atomic_write_json, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    x = np.concatenate([syn.x, data.x_test.astype(np.float32)])
    y = np.concatenate([syn.y, data.y_test.astype(np.int64)])
    split = np.array(["train"] * len(syn.x) + ["test"] * len(data.x_test))
    meta = json.dumps(syn.meta, sort_keys=True)
    extra = {}
    if syn.soft is not None:      # test rows: their one-hot label (the metrics use y; the trainer reads train rows only)
        extra["soft"] = np.concatenate([syn.soft, np.eye(data.n_classes, dtype=np.float32)[data.y_test]]).astype(np.float32)
    atomic_write_bytes(out / "synthetic.npz", _npz_bytes(x=x, y=y, split=split, labels=np.array(data.labels),
                                                         meta=np.array(meta), **extra))
    atomic_write_bytes(out / "samples.png", picture(syn, data))
    trained = npz_recipe(recipe, "synthetic.npz", len(syn.x))
    atomic_write_text(out / "recipe.toml", f"# written by `edgetk distill-data` from {recipe.path or recipe.task}\n"
                      + trained.to_toml())
    record = {**syn.meta, "source_recipe": recipe.path, "files": ["synthetic.npz", "samples.png", "recipe.toml"],
              "n_synthetic": int(len(syn.x)), "n_test_real": int(len(data.x_test)),
              "npz_sha256": hashlib.sha256((out / "synthetic.npz").read_bytes()).hexdigest(),
              "train_with": f"edgetk train {out / 'recipe.toml'} -o RUN_DIR"}
    atomic_write_json(out / "distill.json", record)
    return record


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def picture(syn: Synthetic, data: TaskData, max_per_class: int = 10) -> bytes:
    """A PNG grid: one row per class, up to max_per_class samples (MFCC: frames across, coefficients up)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(syn.meta["per_class"], max_per_class)
    n = data.n_classes
    fig, axes = plt.subplots(n, k, figsize=(1.0 + 1.2 * k, 0.9 * n + 0.6), squeeze=False)
    for c in range(n):
        rows = syn.x[syn.y == c]
        for j in range(k):
            ax = axes[c][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(rows):
                square = data.input_shape[-1] == data.input_shape[-2]
                ax.imshow(_image(rows[j]), cmap="gray" if square else "magma", aspect="equal" if square else "auto",
                          origin="upper" if square else "lower")
            if j == 0:
                ax.set_ylabel(data.labels[c], rotation=0, labelpad=12)
    fig.suptitle(f"{syn.meta['task']}: {syn.meta['method']} synthetic set, {syn.meta['per_class']} per class", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _image(sample: np.ndarray) -> np.ndarray:
    """One sample as a 2-D picture: images as they are (channel mean), MFCC [1, frames, coeffs] as coeffs x frames."""
    a = sample.mean(0) if sample.ndim == 3 else sample.reshape(1, -1)
    return a.T if a.shape[0] > a.shape[1] else a
