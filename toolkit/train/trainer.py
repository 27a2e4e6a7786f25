"""The trainer: deterministic epochs, an atomic checkpoint after each, exact resume, run folder artifacts."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from toolkit.data import TaskData, load_dataset
from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_write_text
from toolkit.nn import build_model
from toolkit.progress import bar
from toolkit.recipe import CHOICES, Recipe, TrainConfig, check_choice, recipe_from_dict
from toolkit.train import augment
from toolkit.train.checkpoint import load_checkpoint, restore_loop, save_loop
from toolkit.train.eager import SGD, AdamW, set_deterministic
from toolkit.train.evaluate import evaluate
from toolkit.train.rundir import write_results

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]   # (model, x, y) -> scalar loss
ParamFilter = Callable[[str, nn.Parameter], bool]                           # (name, param) -> trainable?
Progress = Callable[[dict[str, Any]], None]                                 # called once per epoch


def setup_determinism(cfg: TrainConfig) -> None:
    """Fixed threads, deterministic kernels, seeded RNGs."""
    torch.set_num_threads(max(1, cfg.threads))
    set_deterministic(True, warn_only=True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)


@contextlib.contextmanager
def determinism(cfg: TrainConfig) -> Iterator[None]:
    """setup_determinism(cfg) for a training loop, and the process's torch settings restored afterwards (pytest
    runs many things in one process). Without deterministic mode's NaN fill of every new tensor: a memset per
    activation the kernels overwrite anyway, ~0.3 ms of a ~6 ms width-0.25 DS-CNN step (batch 32, 1 thread); the
    weights are the same bits without it (tests/test_train_fast_step.py)."""
    import torch.utils.deterministic as det

    threads, deterministic, fill = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                                    det.fill_uninitialized_memory)
    try:
        setup_determinism(cfg)
        det.fill_uninitialized_memory = False
        yield
    finally:
        torch.set_num_threads(threads)
        set_deterministic(deterministic)
        det.fill_uninitialized_memory = fill


def default_loss(kind: str, label_smoothing: float = 0.0) -> LossFn:
    """Cross-entropy for classifiers, MSE reconstruction for anomaly autoencoders."""
    if kind == "anomaly":
        return lambda model, x, y: nn.functional.mse_loss(model(x), x)
    return lambda model, x, y: nn.functional.cross_entropy(model(x), y, label_smoothing=label_smoothing)


def make_optimizer(cfg: TrainConfig, params: list[nn.Parameter], fused: bool = False) -> torch.optim.Optimizer:
    """AdamW or SGD (momentum 0.9, Nesterov) over the trainable parameters.

    fused: torch's fused kernel (one call per parameter instead of ~12 element-wise ops each; deterministic; the
    same update up to the last bit: max 1.2e-7 apart after 50 AdamW steps). A DS-CNN width 0.25 (29 tensors) AdamW
    step: 0.92 ms for-loop, 0.58 foreach, 0.14 fused (1 thread), of a ~6 ms batch-32 training step. The fleet's
    stacked members keep the for-loop (their exactness against twins trained alone is measured with it).
    The classes are torch's without its compiler's import (toolkit.train.eager).
    """
    check_choice("recipe", "train.optimizer", cfg.optimizer, ("adamw", "sgd"))
    fast = {"fused": True} if fused else {}
    if cfg.optimizer == "adamw":
        return AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fast)
    return SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay, **fast)


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step cosine decay to zero, or a constant learning rate."""
    check_choice("recipe", "train.scheduler", cfg.scheduler, ("cosine", "none"))
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Shuffled index batches for one epoch, a pure function of (seed, epoch); a last batch of 1 is dropped (BatchNorm)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    out = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in out if len(b) > 1] or out


def memory_format(model: nn.Module, x: np.ndarray, kernel: str = "torch") -> torch.memory_format:
    """The layout to train in: channels-last for a float32 model with Conv2d layers on 4-D input, else contiguous
    (and contiguous for [train] kernel = "fused": the C step reads torch's contiguous tensors).

    oneDNN's CPU convolutions are faster channels-last (measured, 1 thread, one AdamW step: DS-CNN width 1.0
    batch 64 52 vs 78 ms; the pretraining recipe's DS-CNN, batch 32, 21 vs 33 ms; the IMU 1-D CNN 3.9 vs 4.5 ms; the 8x8
    ResNet about even). CPU float64 convolutions have no oneDNN kernels and run 2x slower in it.
    """
    p = next(model.parameters(), None)
    conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    ok = kernel != "fused" and conv and x.ndim == 4 and p is not None and p.dtype == torch.float32
    return torch.channels_last if ok else torch.contiguous_format


_AVG_POOLS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d)


@contextlib.contextmanager
def channels_last_grads(model: nn.Module, fmt: torch.memory_format) -> Iterator[None]:
    """While training in channels-last, hand the gradient of every average pool's input on channels-last too.

    A global average pool's backward (mean: expand, divide) returns a contiguous gradient, so the ReLU
    before it runs its backward on mixed layouts, which takes a slow strided path ([32, 64, 25, 5], 1 thread:
    1.5 ms instead of 50 us; in a fleet stack of 16 DS-CNNs the ReLU backwards took 0.65 ms per member-step,
    0.32 with this hook, of about 6). The values are the same: the ReLU backward is element-wise and already
    wrote a channels-last result. (The fleet's MemberwisePool is covered by the pool it wraps.)
    """
    if fmt != torch.channels_last:
        yield
        return
    hooks = [m.register_forward_pre_hook(_grad_channels_last) for m in model.modules() if isinstance(m, _AVG_POOLS)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def _grad_channels_last(module: nn.Module, args: tuple) -> None:
    x = args[0]
    if isinstance(x, torch.Tensor) and x.requires_grad and x.dim() == 4:
        x.register_hook(lambda g: g.contiguous(memory_format=torch.channels_last))


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, sched: Any, data: TaskData, cfg: TrainConfig,
                epoch: int, loss_fn: LossFn, fmt: torch.memory_format = torch.contiguous_format,
                step: Callable[[float], None] | None = None, fused: Any = None) -> float:
    """One pass over the training set (batches in layout fmt); returns the mean loss. `step(batch_loss)` after
    each batch (progress display only). `fused` (a toolkit.train.fused.FusedDSCNN, [train] kernel = "fused")
    computes the loss and the gradients instead of loss_fn and autograd."""
    model.train()
    torch.manual_seed(cfg.seed * 1_000_003 + epoch)   # dropout masks depend on (seed, epoch) only
    x_all, y_all = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    if data.soft_train is not None:   # soft labels (a distilled npz's `soft`): cross-entropy takes probabilities as targets
        y_all = torch.as_tensor(data.soft_train, dtype=torch.float32)
    total, count = 0.0, 0
    gen = augment.generator(cfg.seed, epoch) if cfg.augment else None   # [train] augment: draws of (seed, epoch) only
    order = batches(len(x_all), cfg.batch_size, cfg.seed, epoch)
    for idx, xb in zip(order, augment.augmented_batches(x_all, order, cfg.augment, gen)):
        t = torch.from_numpy(idx)
        xb = xb if fmt == torch.contiguous_format else xb.contiguous(memory_format=fmt)
        if fused is not None:
            value = fused.step(xb, y_all[t])
        else:
            loss = loss_fn(model, xb, y_all[t])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            value = float(loss.detach())
        opt.step()
        sched.step()
        total += value * len(idx)
        count += len(idx)
        if step is not None:
            step(value)
    if not math.isfinite(total):
        raise EdgetkError(f"training diverged at epoch {epoch + 1} (loss is {total})", fix="lower train.lr")
    return total / max(1, count)


def fused_step(cfg: TrainConfig, model: nn.Module, data: TaskData, loss_fn: LossFn | None) -> Any:
    """The C training step for [train] kernel = "fused" (None for "torch"); one EdgetkError for what it cannot
    train (another loss, soft labels, another task kind; the architecture and frozen parameters: FusedDSCNN).

    The step runs on [train] threads of its own; torch is left on 1 thread for what it still does in the loop
    (batch gather, augmentation, per-epoch evaluation): with 2, its OpenMP workers spin after each small op on the
    core the kernel's worker needs (a 2-thread epoch measured no faster than 1 thread until torch ran on 1)."""
    check_choice("recipe", "train.kernel", cfg.kernel, CHOICES["train.kernel"])
    if cfg.kernel != "fused":
        return None
    from toolkit.train.fused import FusedDSCNN, unsupported

    if loss_fn is not None:
        raise unsupported("a replaced loss (pretraining, distillation)")
    if data.kind != "classification" or data.soft_train is not None:
        raise unsupported(f"a {data.kind} task" if data.kind != "classification" else "soft labels")
    fused = FusedDSCNN(model, cfg.label_smoothing, threads=max(1, cfg.threads))
    torch.set_num_threads(1)                           # determinism() restores the caller's count afterwards
    return fused


def loop_parts(cfg: TrainConfig, model: nn.Module, data: TaskData, loss_fn: LossFn | None = None,
               params: list[nn.Parameter] | None = None) -> tuple[Any, torch.optim.Optimizer, Any]:
    """What a training loop over `data` with cfg steps with: the C step (fused_step; None for kernel "torch"),
    the optimizer over `params` (default: the trainable ones; the kernel's own AdamW when fused) and the per-step
    scheduler over cfg.epochs."""
    fused = fused_step(cfg, model, data, loss_fn)
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    opt = fused.optimizer(cfg) if fused is not None else make_optimizer(cfg, params, fused=True)
    sched = make_scheduler(cfg, opt, cfg.epochs * len(batches(len(data.x_train), cfg.batch_size, cfg.seed, 0)))
    return fused, opt, sched


def trainable(model: nn.Module, param_filter: ParamFilter | None) -> list[nn.Parameter]:
    """Mark parameters trainable per the filter (all when None) and return the trainable ones."""
    for name, p in model.named_parameters():
        p.requires_grad_(param_filter is None or bool(param_filter(name, p)))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise EdgetkError("param_filter left no trainable parameters", fix="let at least one parameter train")
    return params


def _checkpoint(out: Path, recipe: Recipe, model: nn.Module, opt: Any, sched: Any, history: list[dict]) -> None:
    save_loop(out / "checkpoints" / "last.pt", model, opt, sched, history[-1]["epoch"], history=history,
              recipe=recipe.to_toml())
    atomic_write_text(out / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))


def _same_recipe(a: Recipe, b: Recipe) -> bool:
    strip = lambda r: {k: v for k, v in r.to_dict().items() if k != "description"}  # noqa: E731
    return strip(a) == strip(b)


def _stored_recipe(run_dir: Path) -> Recipe:
    import tomllib

    path = run_dir / "recipe.toml"
    if not path.is_file():
        raise EdgetkError(f"{run_dir} has no recipe.toml", fix="pass a run folder written by `edgetk train`")
    return recipe_from_dict(tomllib.loads(path.read_text(encoding="utf-8")), source=str(path))


def begin_run(recipe: Recipe, out: Path, resume: bool, checkpoints: str = "last.pt") -> None:
    """New run: refuse a folder holding one (metrics.json or `checkpoints` glob), store the recipe; resumed: same recipe."""
    if resume:
        if not _same_recipe(_stored_recipe(out), recipe):
            raise EdgetkError(f"the recipe differs from the one {out} was started with",
                              fix=f"resume with `edgetk train --resume {out}` alone (it reuses {out}/recipe.toml)")
        return
    if any((out / "checkpoints").glob(checkpoints)) or (out / "metrics.json").exists():
        raise EdgetkError(f"{out} already holds a training run",
                          fix=f"continue it with --resume {out}, or choose another output folder with -o")
    atomic_write_text(out / "recipe.toml", recipe.to_toml())


def _start(recipe: Recipe, out: Path, resume: bool, model: nn.Module, opt: Any, sched: Any) -> tuple[int, list]:
    state = load_checkpoint(out / "checkpoints" / "last.pt") if resume else None  # a missing one is the first error
    begin_run(recipe, out, resume)
    if state is None:
        return 0, []
    restore_loop(state, model, opt, sched)
    log.info("resuming %s after epoch %d", out, state["epoch"])
    return int(state["epoch"]), list(state["history"])


def _report(row: dict[str, Any], epochs: int, json_progress: bool, progress: Progress | None) -> None:
    if progress is not None:
        progress(row)
    if json_progress:
        print(json.dumps({"event": "epoch", **row}), flush=True)
    else:
        print(f"epoch {row['epoch']:3d}/{epochs}  loss {row['loss']:.4f}  "
              f"{row['metric']} {row['value']:.4f}  ({row['seconds']:.1f} s)", file=sys.stderr, flush=True)


def train(recipe: Recipe, out_dir: str | Path, *, resume: bool = False, json_progress: bool = False,
          loss_fn: LossFn | None = None, param_filter: ParamFilter | None = None,
          model: nn.Module | None = None, data: TaskData | None = None,
          progress: Progress | None = None) -> Path:
    """Train the recipe into out_dir (checkpoint each epoch) and write the run folder; returns out_dir.

    Hooks for reuse (pretraining, distillation, PEFT): `loss_fn(model, x, y)` replaces the task loss,
    `param_filter(name, param)` picks the trainable parameters (others are frozen), `model` and `data`
    replace the recipe's freshly built model and its dataset.
    """
    with determinism(recipe.train):
        return _train(recipe, Path(out_dir), resume, json_progress, loss_fn, param_filter, model, data, progress)


def _train(recipe: Recipe, out: Path, resume: bool, json_progress: bool, loss_fn: LossFn | None,
           param_filter: ParamFilter | None, model: nn.Module | None, data: TaskData | None,
           progress: Progress | None) -> Path:
    cfg = recipe.train
    data = data if data is not None else load_dataset(recipe)
    model = model if model is not None else build_model(recipe, data)
    fmt = memory_format(model, data.x_train, cfg.kernel)
    model.to(memory_format=fmt)                            # back to contiguous below, before anyone else sees it
    fused, opt, sched = loop_parts(cfg, model, data, loss_fn, trainable(model, param_filter))
    first, history = _start(recipe, out, resume, model, opt, sched)
    loss_fn = loss_fn or default_loss(data.kind, cfg.label_smoothing)
    n_batches = len(batches(len(data.x_train), cfg.batch_size, cfg.seed, 0))
    with bar(f"train {recipe.task}", cfg.epochs - first, "epoch", quiet=json_progress) as epochs:
        for epoch in range(first, cfg.epochs):
            t0 = time.monotonic()
            with bar(f"epoch {epoch + 1}/{cfg.epochs}", n_batches, "batch", quiet=json_progress) as b, \
                    channels_last_grads(model, fmt):
                loss = train_epoch(model, opt, sched, data, cfg, epoch, loss_fn, fmt,
                                   step=lambda v: b.advance(1, f"loss {v:.4f}"), fused=fused)
            m = evaluate(model, data)
            history.append({"epoch": epoch + 1, "loss": loss, "metric": m["metric"], "value": m["value"],
                            "lr": opt.param_groups[0]["lr"], "seconds": time.monotonic() - t0})
            _checkpoint(out, recipe, model, opt, sched, history)
            _report(history[-1], cfg.epochs, json_progress, progress)
            epochs.advance(1, f"{m['metric']} {m['value']:.4f}")
    model.to(memory_format=torch.contiguous_format).eval()
    metrics = write_results(out, recipe, model, data, history)
    if json_progress:
        print(json.dumps({"event": "done", "run_dir": str(out), **{k: metrics[k] for k in ("metric", "value", "params", "macs")}}), flush=True)
    return out
