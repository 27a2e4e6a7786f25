"""Fleets: one specialized model per group (speaker, robot, sensor unit), trained as one batched job.

All members share one architecture; `stack.stack_models` turns M members into one model of grouped
operators (member m owns channel block m), so one forward/backward runs the whole fleet. The summed
loss gives each member exactly its own gradient and AdamW is element-wise, so a member follows the
same trajectory as its twin trained alone (`batched=False`), bit for bit (see Exactness below).
(`torch.func.vmap` over `stack_module_state` was measured 1.0x and slower than this on 2 CPU cores.)
Members go through in stacks of 4 by default: a stack's activations must stay in the core's L2 cache
(width-0.25 DS-CNN, batch 32: 256 KB per member per layer; measured on the 2-core EPYC, 1 thread,
channels-last, before exactness: 3.2-3.7 ms per member-step in stacks of 4, 4.9-6.0 at 8, 7.1-7.8 at
16, vs 8.7 for one plain model; micro-benchmark of one step). `edgetk train` uses the recipe's `[fleet] stack`
(FleetConfig default 4, owned by toolkit/recipe.py). Profile of a stack of
4 (per step): BatchNorm fwd+bwd ~30 %, depthwise and pointwise convolutions ~23 % each, ReLU backward
~11 %, AdamW ~3 %;
bmm/einsum pointwise layers and torch.compile were measured no faster (compile: 7.8 vs 4.5 ms, 38 s).

Workers (`[fleet] workers`, 0 = one per CPU core): stacks are independent, so `train_fleet` shares them
out over forked processes (stack i in worker i % workers), each on 1 torch thread, each writing its
stacks' checkpoints; fork lets the workers inherit make_model and the member arrays, and each sends its
members' state_dicts back through a temporary file (read with weights_only=True). Members come out
bit-identical to workers = 1. Workers get SIGKILL when the job dies (PR_SET_PDEATHSIG); a worker that
dies or raises ends the job with one EdgetkError naming its stack and exit code. bench/fleet.py, 32
members, 2 cores, 2 workers, exact: 26.7-32.4 s vs 86-92 s for one plain channels-last model after
another on 1 thread (2.7-3.3x) and 74-87 s on 2 threads (tiny models barely speed up with a second thread);
on a 16-core Xeon, bench/fleet_scaling.py: 2.5x with 2 workers, 4.7x with 4, 8.75x with 8. The most a
stack can gain per core is the plain step's time over a member-step's (bench/fleet_ceiling.py: 1.8x here).
Without fork (not Linux), or where a forked child cannot run autograd (`autograd_survives_fork`), the stacks
train in this process. `edgetk train --cluster` passes a `runner` instead (toolkit.cluster): each stack is a Ray
task (`train_stack`: 1 CPU, 1 torch thread, its checkpoint), its members' weights come back as bytes (`load_stack`).

BatchNorm: a stacked BatchNorm over M*C channels keeps per-channel, hence per-member, batch
statistics and running statistics. Dropout draws different masks than the member alone would; twins
agree exactly only without it.

Exactness (`[fleet] exact`, default true): every member computes the very bits it computes alone, so a
member equals its twin trained alone (same seed, data order, optimiser and torch threads: oneDNN's
reduction order can depend on the thread count) bit for bit, in float32 too.
oneDNN's grouped kernels round differently from one member's for some layers (the 1-input-channel stem,
pointwise weight gradients, BatchNorm and pooling over channel counts that are not a multiple of the
vector width): stack.StackedConv2d / StackedBatchNorm / MemberwisePool probe each layer on this machine
with the training shapes and run the ones that differ member by member with the member's own call.
Measured in float32: 20 AdamW epochs, 8 members, max |dw| = 0 (it was 0.1-0.6 with all layers grouped,
as AdamW grows last-bit differences into different runs). `exact = false` runs every layer grouped (~20 %
faster, equal to the twins only up to float rounding). Both the stack and the plain twin run
channels-last in float32 (float64: contiguous; CPU float64 convolutions have no oneDNN kernels and run
2x slower in channels-last). `[fleet] dtype = "float64"` remains (exact too) but is no faster than
training one member after another. Run folders always get float32 weights.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.data.base import TaskData
from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_write_bytes, atomic_write_json
from toolkit.proc import die_with_parent
from toolkit.recipe import TrainConfig

log = logging.getLogger(__name__)
CAN_FORK = sys.platform == "linux"       # workers are forked: they inherit make_model and the member arrays


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


class StackRunner(Protocol):
    """Trains a fleet's stacks somewhere else (toolkit.cluster.RayStacks: Ray tasks) and sets each member's model."""

    def __call__(self, make_model: Callable[[int], nn.Module], stacks: list[list[Member]], cfg: TrainConfig,
                 ckpts: list[Path | None], exact: bool) -> None: ...

    def summary(self) -> dict:
        """What fleet.json records about where the stacks ran."""


def split_members(data: TaskData, members: int, seed: int, dtype: str = "float32") -> list[Member]:
    """One member per group (cycled with fresh seeds when more members than groups are asked for); inputs in dtype."""
    groups, groups_test = data.groups_train, data.groups_test
    names = sorted(set(groups.tolist())) if groups is not None else []
    if not names:
        raise EdgetkError("the dataset has no groups to build a fleet from",
                          fix="pick a task whose loader provides groups (kws-digits: speaker)")
    x, x_test = data.x_train.astype(dtype, copy=False), data.x_test.astype(dtype, copy=False)
    count = members or len(names)
    out = []
    for i in range(count):
        g = names[i % len(names)]
        tr, te = groups == g, groups_test == g
        out.append(Member(f"{g}-{i // len(names)}" if count > len(names) else str(g), str(g), seed + i,
                          x[tr], data.y_train[tr], x_test[te], data.y_test[te]))
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
                batched: bool = True, stack: int = 4, ckpt_dir: Path | None = None, workers: int = 1,
                exact: bool = True, runner: StackRunner | None = None) -> float:
    """Train every member (in stacks of `stack`, or one after another); fill model and test_top1; return seconds.

    With `ckpt_dir`, stack i saves its state to ckpt_dir/stack-<i>.pt after every epoch and continues from it.
    `workers` (batched only): processes sharing the stacks (0 = one per CPU core; 1 = this process).
    `exact` (batched only): every member computes the very bits it computes alone (stack.StackedConv2d).
    `runner` (batched only): trains the stacks elsewhere instead of `workers` (toolkit.cluster: Ray tasks).
    """
    t0 = time.perf_counter()
    size = max(1, stack) if batched else 1
    stacks = [members[i:i + size] for i in range(0, len(members), size)]
    ckpts = [ckpt_dir / f"stack-{i}.pt" if ckpt_dir is not None else None for i in range(len(stacks))]
    if runner is not None and batched:
        runner(make_model, stacks, cfg, ckpts, exact)
        return _finish(members, len(stacks), t0)
    n = fleet_workers(workers, len(stacks)) if batched else 1
    if workers != 1 and batched and not CAN_FORK:
        log.info("fleet: worker processes need the fork start method (Linux); training in this process")
    if n > 1 and not autograd_survives_fork():
        log.warning("fleet: this process already ran autograd on torch's device threads (a CUDA build of torch "
                    "with a visible GPU), so forked workers cannot train; training the %d stacks in this process. "
                    "Fix: start the fleet job in a fresh process (edgetk train), or set CUDA_VISIBLE_DEVICES=''",
                    len(stacks))
        n = 1
    if n > 1:
        log.info("fleet: %d stacks of %d on %d worker processes (1 thread each)", len(stacks), size, n)
        _train_in_workers(make_model, stacks, cfg, ckpts, n, exact)
    else:
        for group, ckpt in zip(stacks, ckpts):
            _train_batched(make_model, group, cfg, plain=not batched, ckpt=ckpt, exact=exact)
    return _finish(members, n, t0)


def _finish(members: list[Member], workers: int, t0: float) -> float:
    """Evaluate the trained members, record the processes that trained them (fleet.json); the seconds since t0."""
    seconds = time.perf_counter() - t0
    for m in members:
        m.test_top1 = evaluate(m.model, m.x_test, m.y_test)
        m.extra["workers"] = workers
    return seconds


def autograd_survives_fork() -> bool:
    """Whether a forked child of this process can run a backward pass.

    torch refuses autograd in a forked child once the parent's autograd engine has started its device
    threads (a CUDA build of torch with a visible GPU, after any backward here; seen on a 16-core GPU
    machine: every worker died with "Unable to handle autograd's threading in combination with
    fork-based multiprocessing"). A CPU build never starts them. Probed with a throwaway child (a few ms).
    """
    if not CAN_FORK:
        return False
    pid = os.fork()
    if pid == 0:                                                    # the child: try one backward, report, exit
        code = 1
        try:
            x = torch.ones(1, requires_grad=True)
            (x * 2).sum().backward()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def fleet_workers(requested: int, stacks: int) -> int:
    """Worker processes for `stacks` stacks: requested (0 = one per CPU core), at most one a stack; 1 without fork."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(requested or cores, stacks)) if CAN_FORK else 1


def _train_in_workers(make_model: Callable[[int], nn.Module], stacks: list[list[Member]], cfg: TrainConfig,
                      ckpts: list[Path | None], workers: int, exact: bool) -> None:
    """Train the stacks in `workers` forked processes (stack i in worker i % workers); load the members' weights."""
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="edgetk-fleet-") as tmp:
        shares = [list(range(w, len(stacks), workers)) for w in range(workers)]
        job = (make_model, stacks, cfg, ckpts, exact, Path(tmp), os.getpid())
        procs = [ctx.Process(target=_worker, args=(*job, share), daemon=True, name=f"edgetk-fleet-{w}")
                 for w, share in enumerate(shares)]
        try:
            for p in procs:
                p.start()
            _join(procs, shares, stacks, Path(tmp))
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                p.join()
        for i, group in enumerate(stacks):
            load_stack(make_model, group, (Path(tmp) / f"stack-{i}.pt").read_bytes())


def _worker(make_model: Callable[[int], nn.Module], stacks: list[list[Member]], cfg: TrainConfig,
            ckpts: list[Path | None], exact: bool, tmp: Path, parent: int, share: list[int]) -> None:
    """Worker process body: one torch thread, train its share of stacks, write each stack's members' weights."""
    die_with_parent(signal.SIGKILL, parent)  # a killed fleet job leaves no orphan training
    for i in share:
        try:
            states = train_stack(make_model, stacks[i], cfg, ckpts[i], exact)
        except Exception as e:
            fix = getattr(e, "fix", None)
            what = str(e).removesuffix(f"\n  fix: {fix}") if fix else f"{type(e).__name__}: {e}"
            atomic_write_json(tmp / f"stack-{i}.err", {"error": what, "fix": fix})
            raise
        atomic_write_bytes(tmp / f"stack-{i}.pt", states)


def train_stack(make_model: Callable[[int], nn.Module], members: list[Member], cfg: TrainConfig,
                ckpt: Path | None, exact: bool) -> bytes:
    """Train one stack on 1 torch thread (a worker's share, or a cluster task) from its checkpoint, if any;
    return its members' state_dicts as torch.save bytes (read back by load_stack)."""
    torch.set_num_threads(1)
    _train_batched(make_model, members, cfg, ckpt=ckpt, exact=exact)
    buf = io.BytesIO()
    torch.save({str(j): m.model.state_dict() for j, m in enumerate(members)}, buf)
    return buf.getvalue()


def _join(procs: list, shares: list[list[int]], stacks: list[list[Member]], tmp: Path) -> None:
    """Wait for every worker; the first one to fail raises an EdgetkError naming its stack and exit code."""
    pending = {p.sentinel: w for w, p in enumerate(procs)}
    while pending:
        for sentinel in multiprocessing.connection.wait(list(pending)):
            w = pending.pop(sentinel)
            procs[w].join()
            if procs[w].exitcode != 0:
                raise _worker_error(w, procs[w].exitcode, shares[w], stacks, tmp)


def _worker_error(w: int, code: int, share: list[int], stacks: list[list[Member]], tmp: Path) -> EdgetkError:
    """The error for worker w that exited with `code`: the stack it was training and, if it raised, why."""
    i = next((i for i in share if not (tmp / f"stack-{i}.pt").is_file()), share[-1])
    err = tmp / f"stack-{i}.err"
    raised = json.loads(err.read_text()) if err.is_file() else {}
    why = f": {raised['error']}" if raised else (f" (killed by signal {-code})" if code < 0 else "")
    names = ", ".join(m.name for m in stacks[i])
    return EdgetkError(f"fleet worker {w} exited with code {code} while training stack {i} ({names}){why}",
                       fix=raised.get("fix") or "run again with --resume (finished epochs are checkpointed); "
                       "if it recurs, set [fleet] workers = 1 to train in one process and see the error")


def load_stack(make_model: Callable[[int], nn.Module], group: list[Member], states: bytes) -> None:
    """Fresh member models with the weights train_stack returned (read with weights_only=True)."""
    state = torch.load(io.BytesIO(states), map_location="cpu", weights_only=True)
    for j, m in enumerate(group):
        model = make_model(m.seed)
        model.load_state_dict(state[str(j)])
        m.model = model.eval()


def _train_batched(make_model: Callable[[int], nn.Module], members: list[Member], cfg: TrainConfig,
                   plain: bool = False, ckpt: Path | None = None, exact: bool = True) -> None:
    from toolkit.specialize.stack import stack_models, unstack
    from toolkit.train.checkpoint import resume_loop, save_loop
    from toolkit.train.trainer import channels_last_grads, make_optimizer, make_scheduler, memory_format

    models = [make_model(m.seed) for m in members]
    data = [(torch.as_tensor(m.x_train), torch.as_tensor(m.y_train)) for m in members]
    gens = [torch.Generator().manual_seed(m.seed) for m in members]
    fmt = memory_format(models[0], members[0].x_train)
    net = models[0] if plain else stack_models(models, data[0][0][: cfg.batch_size], fmt, exact)
    net = net.train().to(memory_format=fmt)
    steps = _steps(members, cfg.batch_size)
    opt = make_optimizer(cfg, list(net.parameters()))
    sched = make_scheduler(cfg, opt, cfg.epochs * steps)
    for epoch in range(resume_loop(ckpt, net, opt, sched, gens).get("epoch", 0), cfg.epochs):
        with channels_last_grads(net, fmt):
            _fleet_epoch(net, opt, sched, data, _orders(members, steps, cfg.batch_size, gens), cfg, fmt)
        if ckpt is not None:
            save_loop(ckpt, net, opt, sched, epoch + 1, gens)
    if not plain:
        unstack(net, models)
    for m, model in zip(members, models):
        m.model = model.to(memory_format=torch.contiguous_format).eval()   # a plain twin trained channels-last


def _fleet_epoch(net: nn.Module, opt, sched, data: list[tuple[torch.Tensor, torch.Tensor]], order: torch.Tensor,
                 cfg: TrainConfig, fmt: torch.memory_format) -> None:
    """One epoch of the stacked net over every member's batches (order: [M, steps, bs] indices)."""
    from toolkit.specialize.stack import from_blocks, to_blocks

    for s in range(order.shape[1]):
        xb = torch.stack([x[order[i, s]] for i, (x, _) in enumerate(data)])      # [M, bs, C, H, W]
        yb = torch.stack([y[order[i, s]] for i, (_, y) in enumerate(data)])      # [M, bs]
        xin = to_blocks(xb).contiguous(memory_format=fmt)
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


# ---------------------------------------------------------------------------------------------------------
# Fleets that specialize one shared base ([fleet] mode = "specialize").
#
# Every member starts from the same trained base and trains only its top (peft "probe": the classifier;
# "top": the last top_layers conv/linear layers and the norms after them; "bitfit": the biases of those
# layers; "lora": LoRA on those layers, merged back). The layers below the first trainable one are frozen
# and identical for every member, so their activations are computed once per group's data (members that
# share a group share the cache) and the members' tops train above the cache: stacked into grouped
# operators (toolkit.specialize.stack) for probe/top/bitfit, one after another for LoRA (its wrappers do
# not stack). The top runs in eval mode (BatchNorm keeps the base's statistics, no dropout), which is
# what the deployed member computes. Each member is then the base with its top's weights written in
# (LoRA folded): a plain model of the base architecture.

SHARED_MODES = ("probe", "top", "bitfit", "lora")


def chain_of(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The model as a chain of modules whose composition is its forward (nn.Sequential children expanded,
    other children whole); checked on `example`: one EdgetkError when the forward is not such a chain."""
    parts = _chain_parts(model)
    with torch.no_grad():
        was = model.training
        model.eval()
        want, got = model(example), example
        for p in parts:
            got = p(got)
        model.train(was)
    if got.shape != want.shape or not torch.equal(got, want):
        raise EdgetkError(f"{type(model).__name__}'s forward is not a chain of its layers, so its frozen base "
                          "cannot be cut below a trainable top", fix="use [fleet] mode = \"scratch\" for this architecture")
    return parts


def _chain_parts(model: nn.Module) -> list[nn.Module]:
    """chain_of's expansion without its check (for copies of a model chain_of already checked)."""
    def expand(mod: nn.Module) -> list[nn.Module]:
        kids = list(mod.children())
        if isinstance(mod, nn.Sequential) or (mod is model and kids):
            return [leaf for k in kids for leaf in expand(k)]
        return [mod]

    return expand(model)


def cut_index(parts: list[nn.Module], peft: str, top_layers: int) -> int:
    """Index of the first chain part that trains: the classifier's Linear (probe), else the part holding the
    first of the last top_layers conv/linear layers."""
    from toolkit.specialize.peft import head_of

    if peft not in SHARED_MODES:
        raise EdgetkError(f"[fleet] peft = {peft!r} is not a shared-base specialization",
                          fix=f"use one of {', '.join(SHARED_MODES)}")
    holder = nn.Sequential(*parts)
    if peft == "probe":
        first = head_of(holder)
    else:
        layers = [m for m in holder.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        first = layers[-min(max(1, top_layers), len(layers))]
    return next(i for i, p in enumerate(parts) if any(m is first for m in p.modules()))


def member_top(parts: list[nn.Module], cut: int, peft: str, rank: int = 4, alpha: float = 8.0) -> nn.Sequential:
    """A member's trainable top: a copy of parts[cut:], frozen except what the peft mode trains (eval mode)."""
    from toolkit.specialize.peft import LoRAConv2d, LoRALinear, _replace

    top = copy.deepcopy(nn.Sequential(*parts[cut:])).eval()
    for name, p in top.named_parameters():
        p.requires_grad_(peft in ("top", "probe") or (peft == "bitfit" and name.endswith("bias")))
    if peft == "probe":
        for p in top.parameters():
            p.requires_grad_(False)
        [m for m in top.modules() if isinstance(m, nn.Linear)][-1].requires_grad_(True)
    elif peft == "lora":
        _replace(top, lambda m: isinstance(m, nn.Conv2d), lambda m: LoRAConv2d(m, rank, alpha))
        _replace(top, lambda m: isinstance(m, nn.Linear), lambda m: LoRALinear(m, rank, alpha))
    return top


@torch.no_grad()
def frozen_features(base_parts: list[nn.Module], cut: int, x: np.ndarray, batch: int = 512) -> torch.Tensor:
    """The frozen base's activations below the cut for inputs x (eval mode, in batches)."""
    bottom = nn.Sequential(*base_parts[:cut]).eval()
    xs = torch.as_tensor(x)
    return torch.cat([bottom(xs[i:i + batch]) for i in range(0, len(xs), batch)]) if len(xs) else bottom(xs)


def merged_member(base: nn.Module, example: torch.Tensor | None, cut: int, top: nn.Sequential) -> nn.Module:
    """A plain copy of the base with the member's trained top written in (LoRA folded into its layers).

    example None: the base is known to be a chain (train_shared_fleet checked it once), so the copy is not
    checked again (that check is a forward pass per member)."""
    from toolkit.specialize.peft import LoRAConv2d, LoRALinear, merge_peft

    model = copy.deepcopy(base).eval()
    parts = chain_of(model, example) if example is not None else _chain_parts(model)
    lora = any(isinstance(m, (LoRAConv2d, LoRALinear)) for m in top.modules())
    plain = merge_peft(copy.deepcopy(top)) if lora else top     # nothing to fold: read the top's weights as they are
    for dst, src in zip(parts[cut:], plain):
        dst.load_state_dict(src.state_dict())
    for p in model.parameters():
        p.requires_grad_(True)
    return model.eval()


def tops_config(train: TrainConfig, epochs: int) -> TrainConfig:
    """The [train] settings the members' tops train with: [fleet] epochs when set (> 0), else [train]'s own."""
    return replace(train, epochs=epochs) if epochs > 0 else train


def group_config(train: TrainConfig, epochs: int, lr: float) -> TrainConfig | None:
    """The [train] settings of the per-group fine-tune ([fleet] group_epochs, group_lr), None when it is off."""
    return replace(train, epochs=epochs, lr=lr) if epochs > 0 else None


def group_model(base: nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> nn.Module:
    """A copy of the base with every parameter fine-tuned on one group's training data (x, y) by the trainer's
    epoch loop with cfg: its epochs, learning rate, kernel, threads and augmentation; in eval mode."""
    from toolkit.data import TaskData
    from toolkit.train.trainer import default_loss, determinism, loop_parts, train_epoch

    model = copy.deepcopy(base).requires_grad_(True)
    with torch.no_grad():
        classes = int(model.eval()(torch.as_tensor(x[:1])).shape[1])       # the labels' count, for TaskData
    data = TaskData(x, y, x[:0], y[:0], [str(c) for c in range(classes)], "classification")
    with determinism(cfg):
        fused, opt, sched = loop_parts(cfg, model, data)
        for epoch in range(cfg.epochs):
            train_epoch(model, opt, sched, data, cfg, epoch, default_loss(data.kind, cfg.label_smoothing), fused=fused)
    return model.eval()


def train_shared_fleet(base: nn.Module, members: list[Member], cfg: TrainConfig, peft: str = "probe",
                       top_layers: int = 2, rank: int = 4, alpha: float = 8.0, stack: int = 32,
                       exact: bool = False, group_cfg: TrainConfig | None = None) -> dict:
    """Specialize the trained `base` to every member: fill each member's model (a plain merged copy of the
    base), test_top1 and extra["top"] (its unmerged top); return timings {"cache_s", "train_s", "seconds"}.

    stack: members per grouped-operator pass (probe/top/bitfit); LoRA members train one after another.
    group_cfg ([fleet] group_epochs > 0): first fine-tune the whole base on each group's training data
    (group_model); the group's members then specialize that network instead of the base ("group_s": its time).
    """
    t0 = time.perf_counter()
    base = base.eval()
    cut = cut_index(chain_of(base, torch.as_tensor(members[0].x_train[:2])), peft, top_layers)  # checked once
    first: dict[str, Member] = {}
    for m in members:
        first.setdefault(m.group, m)
    groups = {g: base if group_cfg is None else group_model(base, m.x_train, m.y_train, group_cfg)
              for g, m in first.items()}           # one network per group: the base, or the base fine-tuned on it
    t_group = time.perf_counter() - t0
    parts = {g: _chain_parts(net) for g, net in groups.items()}   # copies of the checked chain
    cache = {g: frozen_features(parts[g], cut, m.x_train) for g, m in first.items()}  # one forward per group
    t_cache = time.perf_counter() - t0 - t_group
    feats = [cache[m.group] for m in members]
    tops = []
    for m in members:
        torch.manual_seed(m.seed)                       # LoRA's init: the member's seed
        tops.append(member_top(parts[m.group], cut, peft, rank, alpha))
    size = 1 if peft == "lora" else max(1, stack)
    for i in range(0, len(members), size):
        _train_tops(members[i:i + size], feats[i:i + size], tops[i:i + size], cfg, exact)
    t_train = time.perf_counter() - t0 - t_group - t_cache
    for m, top in zip(members, tops):
        m.model = merged_member(groups[m.group], None, cut, top)
        m.extra["top"] = top
        m.test_top1 = evaluate(m.model, m.x_test, m.y_test)
    seconds = time.perf_counter() - t0
    return {"group_s": t_group, "cache_s": t_cache, "train_s": t_train, "seconds": seconds, "cut": cut,
            "parts": len(parts[members[0].group]),
            "trainable_params": sum(p.numel() for p in tops[0].parameters() if p.requires_grad)}


def _train_tops(members: list[Member], feats: list[torch.Tensor], tops: list[nn.Sequential], cfg: TrainConfig,
                exact: bool) -> None:
    """Train these members' tops on their cached features, stacked when more than one (eval mode throughout)."""
    from toolkit.specialize.stack import stack_models, unstack
    from toolkit.train.trainer import make_optimizer, make_scheduler

    gens = [torch.Generator().manual_seed(m.seed) for m in members]
    data = [(f, torch.as_tensor(m.y_train)) for f, m in zip(feats, members)]
    if len(tops) > 1:
        flags = {n: p.requires_grad for n, p in tops[0].named_parameters()}
        net = stack_models(tops, feats[0][: cfg.batch_size], torch.contiguous_format, exact)
        for n, p in net.named_parameters():
            p.requires_grad_(flags[n])
    else:
        net = tops[0]
    net.eval()
    steps = _steps(members, cfg.batch_size)
    opt = make_optimizer(cfg, [p for p in net.parameters() if p.requires_grad])
    sched = make_scheduler(cfg, opt, cfg.epochs * steps)
    for _ in range(cfg.epochs):
        _fleet_epoch(net, opt, sched, data, _orders(members, steps, cfg.batch_size, gens), cfg,
                     torch.contiguous_format)
    if len(tops) > 1:
        unstack(net, tops)
    for t in tops:
        t.eval()
