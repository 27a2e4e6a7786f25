"""Training layout: channels-last models get channels-last gradients at their average pools, same values."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from toolkit.nn.dscnn import DSCNN, DSCNNConfig
from toolkit.train.trainer import channels_last_grads

CL = torch.channels_last


def _step(use_context: bool) -> tuple[list[torch.Tensor], list[bool]]:
    """One backward of a channels-last DS-CNN: (parameter gradients, was the gradient reaching the pool's input
    channels-last)."""
    torch.manual_seed(0)
    net = DSCNN(DSCNNConfig(width=0.25, n_classes=10)).to(memory_format=CL).train()
    x = torch.randn(8, 1, 49, 10).contiguous(memory_format=CL)
    seen: list[bool] = []

    def watch(mod: torch.nn.Module, args: tuple) -> None:
        args[0].register_hook(lambda g: seen.append(g.is_contiguous(memory_format=CL) and not g.is_contiguous()))

    with channels_last_grads(net, CL if use_context else torch.contiguous_format):
        net.head[0].register_forward_pre_hook(watch)   # after the context's hook: sees what the ReLU before it gets
        F.cross_entropy(net(x), torch.arange(8) % 10).backward()
    return [p.grad for p in net.parameters()], seen


def test_pool_input_gradient_is_channels_last_with_identical_values() -> None:
    plain, seen_plain = _step(False)
    fixed, seen_fixed = _step(True)
    assert seen_plain == [False], "the mean's backward no longer hands on a contiguous gradient: drop the hook"
    assert seen_fixed == [True]
    assert all(torch.equal(a, b) for a, b in zip(plain, fixed))


def test_hooks_are_removed_after_training() -> None:
    net = DSCNN(DSCNNConfig(width=0.25, n_classes=10))
    with channels_last_grads(net, CL):
        assert net.head[0]._forward_pre_hooks
    assert not net.head[0]._forward_pre_hooks
