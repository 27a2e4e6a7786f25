"""Training without importing torch's compiler: a process's first training job used to spend ~0.9 s importing
torch._dynamo (and torch._inductor) that edgetk never uses, since it compiles nothing (0.88 s measured: the import
alone after torch's, this 2-core machine).

Two places in torch 2.13 import it on first use: `torch.use_deterministic_algorithms` (it sets inductor's own
`deterministic` flag) and every `torch.optim.Optimizer` (its add_param_group, state_dict, load_state_dict and
zero_grad carry `torch._disable_dynamo`, its step `_use_grad_for_differentiable`: decorators whose only job in
eager mode is to import dynamo and tell it not to trace). `set_deterministic` sets torch's flag alone (and
inductor's too when something already loaded it), and the optimizers here call those methods' undecorated
functions: the same update, state and state_dict (tests/test_train_eager.py: in a fresh process that trains,
torch._dynamo and torch._inductor stay unloaded; the weights equal torch's own optimizers' bit for bit).
A torch whose methods lose their `__wrapped__` falls back to the decorated ones (slower start, same result).
"""
from __future__ import annotations

import inspect
import sys
from typing import Any, Callable

import torch


def set_deterministic(mode: bool, warn_only: bool = False) -> None:
    """torch.use_deterministic_algorithms(mode, warn_only=warn_only) without importing torch._inductor."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        return
    setter(mode, warn_only=warn_only)


def _plain(fn: Callable) -> Callable:
    """The function under torch's decorators (functools.wraps keeps each as __wrapped__), or fn itself."""
    return inspect.unwrap(fn)


class Eager:
    """Mixin before a torch.optim.Optimizer subclass: its bookkeeping methods without the dynamo decorators."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:  # noqa: D102
        _plain(torch.optim.Optimizer.add_param_group)(self, param_group)

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return _plain(torch.optim.Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: D102
        _plain(torch.optim.Optimizer.load_state_dict)(self, state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:  # noqa: D102
        _plain(torch.optim.Optimizer.zero_grad)(self, set_to_none)

    def _plain_step(self, step: Callable, closure: Any) -> Any:
        """torch's step function under its grad-mode decorator, in the grad mode that decorator sets."""
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return _plain(step)(self, closure)


class AdamW(Eager, torch.optim.AdamW):
    """torch.optim.AdamW (same arguments, update, state and state_dict) without the dynamo import."""

    def step(self, closure=None):  # noqa: D102
        return self._plain_step(torch.optim.AdamW.step, closure)


class SGD(Eager, torch.optim.SGD):
    """torch.optim.SGD (same arguments, update, state and state_dict) without the dynamo import."""

    def step(self, closure=None):  # noqa: D102
        return self._plain_step(torch.optim.SGD.step, closure)
