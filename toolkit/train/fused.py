"""`[train] kernel = "fused"`: the DS-CNN's whole training step (forward with BatchNorm batch statistics, softmax
cross-entropy, backward into every gradient) as one call into C (toolkit/native/train/dscnn_train.c), built with the
host gcc for this CPU (-O3 -march=native, channels fixed at compile time) and cached like edgetk's other host
builds; AdamW's update is one more C call (class AdamW: torch's optimizer, its state and state_dict, with a C step).
The model stays the nn.Module: its parameters and BatchNorm buffers are the C code's memory, so checkpoints,
resume, export and evaluation see the same tensors.

Same function as the module in training mode up to float rounding (tests/test_train_fused.py), deterministic:
the same bits run to run for a thread count (`threads`: the batch's samples split into that many slots, every
sum combined in slot order; 2 threads round differently from 1 in the last bits). Two threads want the second
core free: a torch op with an OpenMP region just before the step (torch on 2 threads: indexing a batch out of the
training set) leaves torch's OpenMP thread spinning there for milliseconds. Scope: the DS-CNN, classification
with hard labels (label smoothing allowed), every parameter trainable, no dropout; anything else is one
EdgetkError naming what is not supported.
"""
from __future__ import annotations

import ctypes
import functools
import platform
from pathlib import Path

import torch
from torch import nn

from toolkit.errors import EdgetkError
from toolkit.train import eager

SOURCE = Path(__file__).resolve().parent.parent / "native" / "train" / "dscnn_train.c"


def _cpu_id() -> str:
    """What -march=native compiled for (part of the cache key: a cache shared between machines must not hand a
    build for one CPU to another)."""
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    import hashlib

    return hashlib.sha256(f"{platform.machine()} {flags}".encode()).hexdigest()[:16]


def build(channels: int, cache: str | Path | None = None) -> Path:
    """The kernel for `channels` built for this CPU (gcc -O3 -march=native), from the build cache (toolkit.native.build;
    `cache`: another folder) when it is there: ~0.8 s of gcc once per machine, compiler and channel count."""
    from toolkit.native.build import build_shared

    return build_shared([SOURCE], name=f"dscnn_train_c{channels}", cache=cache,
                        extra_flags=("-O3", "-march=native", "-pthread", f"-DCH={channels}",
                                     f"-DEDGETK_CPU={_cpu_id()}", "-lm"))


@functools.lru_cache(maxsize=8)
def _library(channels: int) -> ctypes.CDLL:
    from toolkit.native.build import load_shared

    lib = load_shared(build(channels))
    lib.dscnn_train_step.restype = ctypes.c_float
    lib.dscnn_train_step.argtypes = [ctypes.c_void_p] * 9 + [ctypes.c_int32]
    lib.dscnn_work_floats.restype = ctypes.c_long
    lib.dscnn_work_floats.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.dscnn_threads_ready.restype = ctypes.c_int
    lib.dscnn_threads_ready.argtypes = [ctypes.c_int32]
    lib.dscnn_max_threads.restype = ctypes.c_int
    lib.adamw_step.restype = None
    lib.adamw_step.argtypes = [ctypes.c_int32] + [ctypes.c_void_p] * 7
    return lib


def unsupported(what: str) -> EdgetkError:
    return EdgetkError(f'train.kernel = "fused" does not support {what}',
                       fix='set train.kernel = "torch" (the default) for this recipe')


def _pointers(tensors: list[torch.Tensor]) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*(t.data_ptr() for t in tensors))


class FusedDSCNN:
    """The C training step bound to one DS-CNN's tensors: `step(x, y)` writes every parameter's .grad (the same
    tensors each step) and updates the BatchNorm running statistics; returns the batch's mean loss. `threads`:
    how many share a step, 1..8 (None: torch.get_num_threads(), which the trainer sets to [train] threads, at
    most 8); the C library starts its workers once per process."""

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0, threads: int | None = None) -> None:
        from toolkit.nn.dscnn import DSCNN

        if not isinstance(model, DSCNN):
            raise unsupported(f"the {type(model).__name__} architecture (only dscnn)")
        stem_conv = model.stem[0]
        if stem_conv.in_channels != 1:
            raise unsupported(f"{stem_conv.in_channels} input channels (only 1)")
        drop = model.head[2].p
        if drop:
            raise unsupported(f"dropout {drop}")
        convs = [stem_conv] + [layer[0] for block in model.blocks for layer in block]
        norms = [model.stem[1]] + [layer[1] for block in model.blocks for layer in block]
        fc = model.head[3]
        for bn in norms:
            if bn.momentum is None or not bn.track_running_stats or not bn.affine:
                raise unsupported("BatchNorm without momentum, running statistics or affine parameters")
        if len({(bn.eps, bn.momentum) for bn in norms}) > 1:
            raise unsupported("BatchNorms with different eps or momentum")
        self.params = [t for conv, bn in zip(convs, norms) for t in (conv.weight, bn.weight, bn.bias)]
        self.params += [fc.weight, fc.bias]
        if {id(p) for p in self.params} != {id(p) for p in model.parameters()}:
            raise unsupported("a DS-CNN with parameters outside its convs, BatchNorms and classifier")
        if not all(p.requires_grad for p in self.params):
            raise unsupported("frozen parameters (a param filter)")
        if not all(p.dtype == torch.float32 and p.is_contiguous() and p.device.type == "cpu" for p in self.params):
            raise unsupported("parameters that are not contiguous float32 on the CPU")
        self.channels = stem_conv.out_channels
        self.geo_stem = (*stem_conv.kernel_size, *stem_conv.stride, *stem_conv.padding)
        self.blocks, self.classes = len(model.blocks), fc.out_features
        self.lib = _library(self.channels)
        most = int(self.lib.dscnn_max_threads())
        self.threads = self._threads(min(torch.get_num_threads(), most) if threads is None else threads, most)
        self.grads = [torch.zeros_like(p) for p in self.params]
        stats = [t for bn in norms for t in (bn.running_mean, bn.running_var)]
        self._tensors = (stats, [bn.num_batches_tracked for bn in norms])  # kept alive: C holds their addresses
        self._p, self._g = _pointers(self.params), _pointers(self.grads)
        self._s, self._t = _pointers(stats), _pointers(self._tensors[1])
        self._f = torch.tensor([norms[0].momentum, norms[0].eps, label_smoothing], dtype=torch.float32)
        self._work = torch.empty(0)
        self._shapes: dict[tuple[int, ...], tuple[torch.Tensor, int]] = {}

    def _threads(self, threads: int, most: int) -> int:
        if not 1 <= threads <= most:
            raise EdgetkError(f'train.kernel = "fused" runs on 1..{most} threads, not {threads}',
                              fix=f"set train.threads to 1..{most}")
        got = int(self.lib.dscnn_threads_ready(threads))
        if got != threads:
            raise EdgetkError(f"the fused kernel could start only {got} of {threads} threads",
                              fix="set train.threads lower, or free threads (ulimit -u)")
        return threads

    def _geometry(self, shape: tuple[int, ...]) -> tuple[torch.Tensor, int]:
        """The C call's geometry for a batch shape, and the workspace floats it needs (kept per shape: a training
        run sees two, the full batch and the last)."""
        if shape not in self._shapes:
            n, c, h, w = shape
            if c != 1:
                raise unsupported(f"inputs of {c} channels")
            geo = torch.tensor([n, h, w, *self.geo_stem, self.blocks, self.classes], dtype=torch.int32)
            self._shapes[shape] = (geo, int(self.lib.dscnn_work_floats(geo.data_ptr(), self.threads)))
        return self._shapes[shape]

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One forward + backward of the batch (x [N, 1, H, W] float32, y [N] int64 class indices)."""
        x = x.contiguous().to(torch.float32)
        y = y.contiguous().to(torch.int64)
        if y.ndim != 1 or len(y) != len(x) or x.ndim != 4:
            raise unsupported("soft or multi-dimensional targets" if y.ndim != 1 else f"inputs of shape {tuple(x.shape)}")
        if len(y):
            low, high = (int(v) for v in torch.aminmax(y))
            if low < 0 or high >= self.classes:
                raise EdgetkError(f"a label is outside 0..{self.classes - 1}", fix="check the dataset's labels")
        geo, need = self._geometry(tuple(x.shape))
        if self._work.numel() < need:
            self._work = torch.empty(need, dtype=torch.float32)
        loss = self.lib.dscnn_train_step(geo.data_ptr(), self._f.data_ptr(), self._p, self._g, self._s, self._t,
                                         x.data_ptr(), y.data_ptr(), self._work.data_ptr(), self.threads)
        for p, g in zip(self.params, self.grads):
            p.grad = g
        return float(loss)

    def optimizer(self, cfg) -> torch.optim.Optimizer:
        """The optimizer of [train]: AdamW as one C call over every tensor (torch's update and state_dict), SGD
        as the trainer makes it."""
        from toolkit.train.trainer import make_optimizer

        if cfg.optimizer != "adamw":
            return make_optimizer(cfg, self.params, fused=True)
        return AdamW(self.params, self.lib, lr=cfg.lr, weight_decay=cfg.weight_decay)


class AdamW(eager.AdamW):
    """torch.optim.AdamW (the same hyperparameters, state and state_dict, so checkpoints resume either way; the
    class of toolkit.train.eager, which skips torch's compiler import) whose step is one C call over all its
    tensors: ~0.1 ms instead of ~0.45 for torch's fused kernel and its Python around it (29 tensors of a
    width-0.25 DS-CNN). One parameter group, no amsgrad, no maximize, no closure."""

    def __init__(self, params: list[nn.Parameter], lib: ctypes.CDLL, lr: float, weight_decay: float) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self._lib = lib
        self._bound: tuple = ()

    def load_state_dict(self, state_dict: dict) -> None:  # noqa: D102  (new state tensors: bind them again)
        self._bound = ()
        super().load_state_dict(state_dict)

    def _pointers(self, ps: list[torch.Tensor]) -> tuple:
        """The C call's arrays over ps and their state, built on the first step and again only when the
        parameters with a gradient, their gradient tensors or (load_state_dict) their state tensors change."""
        grads = [p.grad for p in ps]
        if self._bound and len(grads) == len(self._bound[0]) and all(a is b for a, b in zip(grads, self._bound[0])):
            return self._bound
        state = []
        for p in ps:
            st = self.state[p]
            if not st:                                  # as torch initializes it (float32 step on the CPU)
                st["step"] = torch.tensor(0.0, dtype=torch.float32)
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state.append((st["exp_avg"], st["exp_avg_sq"], st["step"]))
        cols = list(zip(*state))
        for t in (*ps, *grads, *cols[0], *cols[1]):
            if not (t.is_contiguous() and t.dtype == torch.float32):
                raise unsupported("AdamW state that is not contiguous float32")
        self._bound = (grads, torch.tensor([p.numel() for p in ps], dtype=torch.int64), _pointers(ps),
                       _pointers(grads), *(_pointers(list(c)) for c in cols), (ps, state))   # kept alive: C reads them
        return self._bound

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        if closure is not None or len(self.param_groups) != 1:
            raise unsupported("an optimizer closure or several parameter groups")
        group = self.param_groups[0]
        if group["amsgrad"] or group["maximize"]:
            raise unsupported("amsgrad or maximize")
        ps = [p for p in group["params"] if p.grad is not None]
        if not ps:
            return None
        _, sizes, p_ptr, g_ptr, m_ptr, v_ptr, s_ptr, _ = self._pointers(ps)
        beta1, beta2 = group["betas"]
        h = (ctypes.c_double * 5)(float(group["lr"]), beta1, beta2, group["eps"], group["weight_decay"])
        self._lib.adamw_step(len(ps), sizes.data_ptr(), p_ptr, g_ptr, m_ptr, v_ptr, s_ptr, h)
        return None
