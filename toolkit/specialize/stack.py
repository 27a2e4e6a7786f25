"""Stack M same-architecture models into one model of grouped operators (a fleet in one forward).

Member m owns channel block m of every activation: Conv2d(Cin, Cout, groups=g) becomes
Conv2d(M*Cin, M*Cout, groups=M*g), BatchNorm(C) becomes BatchNorm(M*C) (per-channel statistics are
per-member statistics, running stats included), Linear becomes a batched matmul. Element-wise ops,
pooling, flatten and residual adds keep the block layout, so the members' own forward code runs
unchanged on input [B, M*Cin, H, W] and returns [B, M*K]. Channel concatenation would interleave
blocks: `stack_models` checks the stacked forward against every member and refuses on mismatch.
With exact=True (the default) every member gets the very bits it computes alone, forward and backward:
layers whose grouped kernel rounds differently on this machine run member by member (StackedConv2d).
"""
from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)


class _MemberwiseConv(torch.autograd.Function):
    """A stacked convolution whose forward, input gradient and weight gradient each run either as one
    grouped call or member by member with the very call a member alone makes (see StackedConv2d)."""

    @staticmethod
    def forward(ctx, x, weight, bias, conv: "StackedConv2d"):  # noqa: D102
        ctx.conv, ctx.has_bias = conv, bias is not None
        ctx.save_for_backward(x, weight)
        if conv.grouped["fwd"]:
            return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        ys = [F.conv2d(xi, wi, bi, conv.stride, conv.padding, conv.dilation, conv.groups // conv.members)
              for xi, wi, bi in zip(_blocks(x, conv.members), _blocks(weight, conv.members, 0),
                                    _blocks(bias, conv.members, 0))]
        return torch.cat(ys, 1).contiguous(memory_format=_format(ys[0]))

    @staticmethod
    def backward(ctx, gy):  # noqa: D102
        x, weight = ctx.saved_tensors
        c, m = ctx.conv, ctx.conv.members
        want = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        grouped = [want[0] and c.grouped["dx"], want[1] and c.grouped["dw"], want[2] and c.grouped["dw"]]
        alone = [w and not g for w, g in zip(want, grouped)]
        out: list[torch.Tensor | None] = [None, None, None]
        if any(grouped):
            out = list(torch.ops.aten.convolution_backward(
                gy, x, weight, [weight.shape[0]] if grouped[2] else None, c.stride, c.padding, c.dilation,
                False, [0, 0], c.groups, grouped))
        if any(alone):
            parts = [torch.ops.aten.convolution_backward(
                gi, xi, wi, [wi.shape[0]] if alone[2] else None, c.stride, c.padding, c.dilation, False, [0, 0],
                c.groups // m, alone) for gi, xi, wi in zip(_blocks(gy, m), _blocks(x, m), _blocks(weight, m, 0))]
            for k in range(3):
                if alone[k]:
                    out[k] = torch.cat([p[k] for p in parts], 1 if k == 0 else 0)
            if alone[0]:
                out[0] = out[0].contiguous(memory_format=_format(x))
        return out[0], out[1], out[2], None


class _DenseGrad(torch.autograd.Function):
    """Identity whose backward hands on the gradient densely laid out (as a member alone receives it), not as
    the strided channel block of the stacked gradient that torch.cat's backward gives."""

    @staticmethod
    def forward(ctx, x):  # noqa: D102
        ctx.fmt = _format(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        return g.contiguous(memory_format=ctx.fmt)


def _cat_members(ys: list[torch.Tensor]) -> torch.Tensor:
    """Member outputs -> one stacked tensor (channel blocks), each member's gradient dense on the way back."""
    fmt = _format(ys[0])
    return torch.cat([_DenseGrad.apply(y) for y in ys], 1).contiguous(memory_format=fmt)


def _blocks(t: torch.Tensor | None, members: int, dim: int = 1) -> list:
    """Each member's block of t along dim, laid out as the member alone would hold it."""
    if t is None:
        return [None] * members
    fmt = _format(t)
    return [b.contiguous(memory_format=fmt) for b in t.chunk(members, dim)]


def _random_like(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Probe data: normal values with t's shape, dtype and memory layout."""
    return torch.randn(t.shape, generator=gen, dtype=t.dtype).contiguous(memory_format=_format(t))


def _format(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
        and not t.is_contiguous() else torch.contiguous_format


class StackedConv2d(nn.Conv2d):
    """M Conv2d layers as one grouped convolution, or member by member where that differs in the last bit.

    oneDNN picks other algorithms for a grouped convolution than for one member's (a 1-input-channel
    stem gets another forward kernel; a pointwise weight gradient sums the batch in another order), so
    in float32 the grouped result can differ from the member's own in the last bits, and AdamW grows
    that into a different training run. `probe` (stack_models, exact=True) tries each of forward, input gradient and
    weight gradient on this machine, with the training shapes and memory format, and keeps the one
    grouped call only where it gives every member its own bits; the rest run member by member with the
    call a member alone makes. Until probed, everything runs member by member.
    """

    def __init__(self, convs: list[nn.Conv2d]) -> None:
        c, m = convs[0], len(convs)
        super().__init__(m * c.in_channels, m * c.out_channels, c.kernel_size, c.stride, c.padding,
                         c.dilation, m * c.groups, c.bias is not None, c.padding_mode, dtype=c.weight.dtype)
        self.members = m
        with torch.no_grad():
            self.weight.copy_(torch.cat([x.weight for x in convs]))
            if c.bias is not None:
                self.bias.copy_(torch.cat([x.bias for x in convs]))
        self.grouped = {"fwd": m == 1, "dx": m == 1, "dw": m == 1}

    def grouped_all(self) -> None:
        """Run forward and backward as one grouped call each (fastest; equal to the members up to float rounding)."""
        self.grouped = {"fwd": True, "dx": True, "dw": True}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if all(self.grouped.values()) or self.padding_mode != "zeros":   # (no zoo model pads otherwise)
            return super().forward(x)
        return _MemberwiseConv.apply(x, self.weight, self.bias, self)

    def probe(self, x: torch.Tensor) -> None:
        """Set self.grouped: which of forward / input grad / weight grad the grouped call gets bit for bit right."""
        gen = torch.Generator().manual_seed(0)
        x = _random_like(x, gen)
        self.grouped = {"fwd": True, "dx": True, "dw": True}
        with torch.no_grad():
            y = super().forward(x)
        gy = _random_like(y, gen)
        args = (self.stride, self.padding, self.dilation, False, [0, 0])
        bias = [self.out_channels] if self.bias is not None else None
        mask = [True, True, bias is not None]
        g = torch.ops.aten.convolution_backward(gy, x, self.weight, bias, *args, self.groups, mask)
        m = self.members
        ys, parts = [], []
        for gi, xi, wi, bi in zip(_blocks(gy, m), _blocks(x, m), _blocks(self.weight.detach(), m, 0),
                                  _blocks(self.bias.detach() if self.bias is not None else None, m, 0)):
            ys.append(F.conv2d(xi, wi, bi, self.stride, self.padding, self.dilation, self.groups // m))
            parts.append(torch.ops.aten.convolution_backward(gi, xi, wi, bias and [wi.shape[0]], *args,
                                                             self.groups // m, mask))
        same = lambda a, b, dim: torch.equal(a, torch.cat(b, dim))  # noqa: E731
        self.grouped = {"fwd": same(y, ys, 1), "dx": same(g[0], [p[0] for p in parts], 1),
                        "dw": same(g[1], [p[1] for p in parts], 0)
                        and (bias is None or same(g[2], [p[2] for p in parts], 0))}

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weight (and bias)."""
        n = self.out_channels // self.members
        return {k: v[i * n:(i + 1) * n] for k, v in self.named_parameters()}


class StackedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """M BatchNorm layers as one BatchNorm over M*C channels, or (training, where `probe` finds the one call
    rounds differently from a member alone: vectorised and scalar channel loops differ when C is not a
    multiple of the vector width) one batch_norm call per member on its channel block."""

    def __init__(self, norms: list[nn.modules.batchnorm._BatchNorm]) -> None:
        b, m = norms[0], len(norms)
        dtype = (b.weight if b.affine else b.running_mean).dtype
        super().__init__(m * b.num_features, b.eps, b.momentum, b.affine, b.track_running_stats, dtype=dtype)
        self.members, self._dim = m, b._check_input_dim
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                if getattr(b, name) is not None:
                    getattr(self, name).copy_(torch.cat([getattr(x, name) for x in norms]))
        self.grouped = m == 1

    def _check_input_dim(self, x: torch.Tensor) -> None:
        self._dim(x)

    def grouped_all(self) -> None:
        """One call over the stack (equal to the members up to float rounding)."""
        self.grouped = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.grouped or not self.training:
            return super().forward(x)
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        n = self.num_features // self.members
        part = lambda t, i: None if t is None else t[i * n:(i + 1) * n]  # noqa: E731
        ys = [F.batch_norm(xi, part(self.running_mean, i), part(self.running_var, i), part(self.weight, i),
                           part(self.bias, i), True, factor, self.eps)
              for i, xi in enumerate(_blocks(x, self.members))]
        return _cat_members(ys)

    def probe(self, x: torch.Tensor) -> None:
        """Set self.grouped: whether one call gives every member its own bits (output, gradients, running stats)."""
        x = _random_like(x, torch.Generator().manual_seed(0)).requires_grad_(True)
        runs = []
        for grouped in (True, False):
            bn = copy.deepcopy(self).train()
            bn.grouped = grouped
            y = bn(x)
            params = [x, *bn.parameters()]
            grads = torch.autograd.grad(y, params, torch.ones_like(y) + x.detach())
            runs.append([y, *grads, *(b for b in bn.buffers())])
        self.grouped = all(torch.equal(a, b) for a, b in zip(*runs))

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's affine parameters and running statistics."""
        n = self.num_features // self.members
        out = {k: v[i * n:(i + 1) * n] for k, v in [*self.named_parameters(), *self.named_buffers()]
               if k != "num_batches_tracked"}
        if self.num_batches_tracked is not None:
            out["num_batches_tracked"] = self.num_batches_tracked.clone()
        return out


class _MemberGradLinear(torch.autograd.Function):
    """Batched matmul of M Linear layers; each member's weight and bias gradient as nn.Linear computes it alone."""

    @staticmethod
    def forward(ctx, h, weight, bias):  # noqa: D102  h: [B, M, in]
        ctx.save_for_backward(h, weight)
        ctx.has_bias = bias is not None
        y = torch.einsum("bmi,moi->bmo", h, weight)                              # [B, M, out]
        return y + bias if bias is not None else y

    @staticmethod
    def backward(ctx, gy):  # noqa: D102  gy: [B, M, out]
        h, weight = ctx.saved_tensors
        gh = torch.einsum("bmo,moi->bmi", gy, weight) if ctx.needs_input_grad[0] else None
        g = [gy[:, i].contiguous() for i in range(weight.shape[0])]
        gw = torch.stack([gi.t().mm(h[:, i].contiguous()) for i, gi in enumerate(g)])   # addmm's own backward
        gb = torch.stack([gi.sum(0) for gi in g]) if ctx.has_bias else None
        return gh, gw, gb


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
        return _MemberGradLinear.apply(h, self.weight, self.bias).reshape(*lead, -1)

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weight (and bias)."""
        return {k: v[i] for k, v in self.named_parameters()}


class MemberwisePool(nn.Module):
    """An averaging pool over the stacked channels, or on each member's channel block alone where the
    stacked reduction differs in the last bit from the member's (`probe`, as StackedConv2d)."""

    def __init__(self, pool: nn.Module, members: int) -> None:
        super().__init__()
        self.pool, self.members, self.grouped = pool, members, False

    def grouped_all(self) -> None:
        """One pool over the stack (equal to the members up to float rounding)."""
        self.grouped = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.grouped:
            return self.pool(x)
        return _cat_members([self.pool(b) for b in _blocks(x, self.members)])

    def probe(self, x: torch.Tensor) -> None:
        """Set self.grouped: whether one pool over the stack gives every member its own bits, forward and backward."""
        x = _random_like(x, torch.Generator().manual_seed(0)).requires_grad_(True)
        self.grouped = True
        y = self(x)
        gy = torch.randn_like(y)
        (gx,) = torch.autograd.grad(y, x, gy)
        self.grouped = False
        y2 = self(x)
        (gx2,) = torch.autograd.grad(y2, x, gy)
        self.grouped = torch.equal(y, y2) and torch.equal(gx, gx2)


_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AvgPool1d, nn.AvgPool2d)


def _stack_leaf(mods: list[nn.Module]) -> nn.Module | None:
    first = mods[0]
    if isinstance(first, _POOLS) and len(mods) > 1:
        return MemberwisePool(first, len(mods))
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


def stack_models(models: list[nn.Module], example: torch.Tensor,
                 memory_format: torch.memory_format = torch.contiguous_format, exact: bool = True) -> nn.Module:
    """One module computing every member's forward on to_blocks(x); example is one member-shaped batch.

    The stacked model is in memory_format (weights and, as the training loop must feed it, input).
    exact: its convolutions and pools are probed with the example's shapes and give every member the
    bits it computes alone (StackedConv2d); otherwise they all run grouped (equal up to float rounding).
    """
    stacked = copy.deepcopy(models[0])
    _replace_all(stacked, models)
    stacked.to(memory_format=memory_format)
    was = [m.training for m in models]
    shapes: dict[nn.Module, torch.Tensor] = {}
    hooks = [mod.register_forward_pre_hook(lambda mod, args: shapes.setdefault(mod, args[0].detach()))
             for mod in stacked.modules() if hasattr(mod, "probe")]
    with torch.no_grad():
        for m in (*models, stacked):
            m.eval()
        xs = example.unsqueeze(0).expand(len(models), *example.shape)
        got = from_blocks(stacked(to_blocks(xs).contiguous(memory_format=memory_format)), len(models))
        want = torch.stack([m(example) for m in models])
    for h in hooks:
        h.remove()
    for mod, x in shapes.items():
        mod.probe(x) if exact else mod.grouped_all()
    if exact:
        alone = [f"{n} ({', '.join(w)})" for n, mod in stacked.named_modules() if mod in shapes and (w := _alone(mod))]
        log.info("fleet stack of %d, exact: member by member on this machine: %s", len(models), ", ".join(alone) or "-")
    for m, w in zip(models, was):
        m.train(w)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise EdgetkError("this architecture's forward mixes members' channel blocks (e.g. a channel concat)",
                          fix="train this fleet with [fleet] batched = false")
    return stacked


def _alone(mod: nn.Module) -> list[str]:
    """What a probed layer runs member by member (forward, input/weight gradient, or all of it)."""
    g = mod.grouped
    return [k for k, v in g.items() if not v] if isinstance(g, dict) else ([] if g else ["all"])


def unstack(stacked: nn.Module, models: list[nn.Module]) -> None:
    """Copy every member's slice of the stacked weights and statistics back into models (in place)."""
    states: list[dict[str, torch.Tensor]] = [{} for _ in models]
    for name, mod in stacked.named_modules():
        if hasattr(mod, "member_state"):
            for i, st in enumerate(states):
                st.update({f"{name}.{k}": v.detach().clone() for k, v in mod.member_state(i).items()})
    for model, st in zip(models, states):
        model.load_state_dict(st)


