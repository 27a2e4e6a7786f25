"""toolkit.train.eager: training never imports torch's compiler (torch._dynamo, torch._inductor: ~0.9 s of a
process's first job), and its optimizers are torch's, bit for bit.

A fresh process runs what `edgetk train` and the shared-base fleet job run (the fused kernel and the torch
kernel, a checkpoint each epoch, the members' stacked tops) and reports whether either module got loaded; the
optimizers run beside torch.optim's own on the same gradients and must give the same bits, the same
state_dict, and take each other's state (checkpoints written before this change resume).
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from toolkit.paths import repo_dir

RECIPE = repo_dir("models") / "kws-digits-fleet-shared.toml"

CHILD = r"""
import json, sys, tempfile
from pathlib import Path
from toolkit.data import load_dataset
from toolkit.recipe import load_recipe
from toolkit.specialize.fleet import split_members, train_shared_fleet
from toolkit.train import load_run, train

loaded = lambda: sorted(m for m in ("torch._dynamo", "torch._inductor") if m in sys.modules)
out = {"start": loaded()}
with tempfile.TemporaryDirectory() as tmp:
    for kernel in ("fused", "torch"):
        r = load_recipe(sys.argv[1], ["train.epochs=2", 'data.groups=["george", "jackson"]', f"train.kernel={kernel}"])
        r = r.replace(extra={k: v for k, v in r.extra.items() if k != "fleet"})
        data = load_dataset(r)
        run = load_run(train(r, Path(tmp) / kernel, data=data), data=data)
        out[kernel] = loaded()
    members = split_members(data, 4, 0)
    train_shared_fleet(run.model, members, r.train, "probe", stack=4, exact=True)
    out["fleet"] = loaded()
print(json.dumps(out))
"""


def test_training_never_imports_the_compiler(shared):
    from conftest import require_tool

    require_tool("gcc", "apt-get install gcc (the fused kernel is built with the host compiler)")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, "-c", CHILD, str(RECIPE)], capture_output=True, text=True, timeout=600,
                         env=env, cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got == {"start": [], "fused": [], "torch": [], "fleet": []}, got


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


CASES = [
    ("AdamW", {"lr": 0.02, "weight_decay": 0.01}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.01, "fused": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.001}),
]


@pytest.mark.parametrize("name,kw", CASES)
def test_eager_optimizers_are_torchs_bit_for_bit(name, kw):
    from toolkit.train import eager

    a, b = _model(), _model()
    ours, ref = getattr(eager, name)(a.parameters(), **kw), getattr(torch.optim, name)(b.parameters(), **kw)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))

    def step(model, opt):
        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss
        return float(opt.step(closure).detach())

    for _ in range(12):
        assert step(a, ours) == step(b, ref)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not any(p.grad is None for p in a.parameters())
    sa, sb = ours.state_dict(), ref.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert all(torch.equal(sa["state"][k][s], sb["state"][k][s]) for k in sb["state"] for s in sb["state"][k])
    ours.load_state_dict(copy.deepcopy(sb))            # torch's state (an older checkpoint) into ours, and back
    ref.load_state_dict(copy.deepcopy(ours.state_dict()))
    for _ in range(3):
        assert step(a, ours) == step(b, ref)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    ours.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in a.parameters())


def test_set_deterministic_sets_torchs_flag():
    from toolkit.train.eager import set_deterministic

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        set_deterministic(True, warn_only=True)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        set_deterministic(False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        set_deterministic(before[0], warn_only=before[1])
