"""Stack M same-architecture models into one model of grouped operators (a fleet in one forward).

Member m owns channel block m of every activation: Conv2d(Cin, Cout, groups=g) becomes
Conv2d(M*Cin, M*Cout, groups=M*g), BatchNorm(C) becomes BatchNorm(M*C) (per-channel statistics are
per-member statistics, running stats included), Linear becomes a batched matmul. Element-wise ops,
pooling, flatten and residual adds keep the block layout, so the members' own forward code runs
unchanged on input [B, M*Cin, H, W] and returns [B, M*K]. Channel concatenation would interleave
blocks: `stack_models` checks the stacked forward against every member and refuses on mismatch.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from toolkit.errors import EdgetkError


class StackedConv2d(nn.Conv2d):
    """M Conv2d layers as one grouped convolution."""

    def __init__(self, convs: list[nn.Conv2d]) -> None:
        c, m = convs[0], len(convs)
        super().__init__(m * c.in_channels, m * c.out_channels, c.kernel_size, c.stride, c.padding,
                         c.dilation, m * c.groups, c.bias is not None, c.padding_mode, dtype=c.weight.dtype)
        self.members = m
        with torch.no_grad():
            self.weight.copy_(torch.cat([x.weight for x in convs]))
            if c.bias is not None:
                self.bias.copy_(torch.cat([x.bias for x in convs]))

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weight (and bias)."""
        n = self.out_channels // self.members
        return {k: v[i * n:(i + 1) * n] for k, v in self.named_parameters()}


class StackedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """M BatchNorm layers as one BatchNorm over M*C channels."""

    def __init__(self, norms: list[nn.modules.batchnorm._BatchNorm]) -> None:
        b, m = norms[0], len(norms)
        dtype = (b.weight if b.affine else b.running_mean).dtype
        super().__init__(m * b.num_features, b.eps, b.momentum, b.affine, b.track_running_stats, dtype=dtype)
        self.members, self._dim = m, b._check_input_dim
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                if getattr(b, name) is not None:
                    getattr(self, name).copy_(torch.cat([getattr(x, name) for x in norms]))

    def _check_input_dim(self, x: torch.Tensor) -> None:
        self._dim(x)

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's affine parameters and running statistics."""
        n = self.num_features // self.members
        out = {k: v[i * n:(i + 1) * n] for k, v in [*self.named_parameters(), *self.named_buffers()]
               if k != "num_batches_tracked"}
        if self.num_batches_tracked is not None:
            out["num_batches_tracked"] = self.num_batches_tracked.clone()
        return out


class StackedLinear(nn.Module):
    """M Linear layers as one batched matmul on [B, M*in] -> [B, M*out]."""

    def __init__(self, linears: list[nn.Linear]) -> None:
        super().__init__()
        self.members = len(linears)
        self.weight = nn.Parameter(torch.stack([x.weight.detach() for x in linears]).clone())  # [M, out, in]
        has_bias = linears[0].bias is not None
        self.bias = nn.Parameter(torch.stack([x.bias.detach() for x in linears]).clone()) if has_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        h = x.reshape(-1, self.members, self.weight.shape[2])                   # [B, M, in]
        y = torch.einsum("bmi,moi->bmo", h, self.weight)                         # [B, M, out]
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, -1)

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weight (and bias)."""
        return {k: v[i] for k, v in self.named_parameters()}


def _stack_leaf(mods: list[nn.Module]) -> nn.Module | None:
    first = mods[0]
    if isinstance(first, nn.Conv2d):
        return StackedConv2d(mods)
    if isinstance(first, nn.modules.batchnorm._BatchNorm):
        return StackedBatchNorm(mods)
    if isinstance(first, nn.Linear):
        return StackedLinear(mods)
    if list(first.parameters(recurse=False)) or list(first.buffers(recurse=False)):
        raise EdgetkError(f"a fleet cannot stack layers of type {type(first).__name__}",
                          fix="build fleet members from Conv2d, BatchNorm, Linear and parameter-free ops")
    return None


def _replace_all(stacked: nn.Module, members: list[nn.Module]) -> None:
    previous: nn.Module | None = None
    for name, child in list(stacked.named_children()):
        peers = [getattr(m, name) for m in members]
        new = _stack_leaf(peers) if not list(child.children()) else None
        if new is not None:
            setattr(stacked, name, new)
        else:
            _replace_all(child, peers)
            _relu_in_place(stacked, name, child, previous)
        previous = new if new is not None else child


def _relu_in_place(parent: nn.Module, name: str, child: nn.Module, previous: nn.Module | None) -> None:
    """A ReLU right after a BatchNorm in a Sequential overwrites the BN output (nobody else reads it).

    Same values and gradients, one activation-sized buffer less per layer: ~12 % of a fleet step on
    this CPU (the stacked activations are memory-bound).
    """
    if isinstance(parent, nn.Sequential) and isinstance(child, nn.ReLU) and isinstance(previous, StackedBatchNorm):
        setattr(parent, name, nn.ReLU(inplace=True))


def to_blocks(x: torch.Tensor) -> torch.Tensor:
    """Member batches [M, B, C, ...] -> stacked input [B, M*C, ...]."""
    return x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])


def from_blocks(y: torch.Tensor, members: int) -> torch.Tensor:
    """Stacked output [B, M*K] -> member outputs [M, B, K]."""
    return y.reshape(y.shape[0], members, -1).transpose(0, 1)


def stack_models(models: list[nn.Module], example: torch.Tensor) -> nn.Module:
    """One module computing every member's forward on to_blocks(x); example is one member-shaped batch."""
    stacked = copy.deepcopy(models[0])
    _replace_all(stacked, models)
    was = [m.training for m in models]
    with torch.no_grad():
        for m in (*models, stacked):
            m.eval()
        xs = example.unsqueeze(0).expand(len(models), *example.shape)
        got = from_blocks(stacked(to_blocks(xs)), len(models))
        want = torch.stack([m(example) for m in models])
    for m, w in zip(models, was):
        m.train(w)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise EdgetkError("this architecture's forward mixes members' channel blocks (e.g. a channel concat)",
                          fix="train this fleet with [fleet] batched = false")
    return stacked


def unstack(stacked: nn.Module, models: list[nn.Module]) -> None:
    """Copy every member's slice of the stacked weights and statistics back into models (in place)."""
    states: list[dict[str, torch.Tensor]] = [{} for _ in models]
    for name, mod in stacked.named_modules():
        if hasattr(mod, "member_state"):
            for i, st in enumerate(states):
                st.update({f"{name}.{k}": v.detach().clone() for k, v in mod.member_state(i).items()})
    for model, st in zip(models, states):
        model.load_state_dict(st)


