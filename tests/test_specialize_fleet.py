"""Fleet mechanics: stacked members compute exactly what the members compute; batched == sequential."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from toolkit.nn import build_model
from toolkit.recipe import FleetConfig, load_recipe


pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def kws(shared):
    from toolkit.data import load_dataset

    r = load_recipe("models/kws-digits.toml", ["model.width=0.25", "model.dropout=0.0"])
    return r, load_dataset(r)


@pytest.mark.parametrize("task,width,fmt", [
    ("kws-digits", 0.25, "channels_last"), ("kws-digits", 0.25, "contiguous_format"),
    ("image-digits", 0.25, "channels_last"), ("imu-motions", 0.25, "contiguous_format")])
def test_stacked_forward_and_backward_are_the_members_own_bits(shared, task, width, fmt):
    """Each member's output, every parameter gradient and the unstacked state: the very bits of the member alone."""
    from toolkit.data import load_dataset
    from toolkit.specialize.stack import from_blocks, stack_models, to_blocks, unstack

    r = load_recipe(f"models/{task}.toml", [f"model.width={width}", "model.dropout=0.0"])
    data = load_dataset(r)
    fmt = getattr(torch, fmt)
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(build_model(r, data).to(memory_format=fmt))
    x = torch.from_numpy(data.x_train[:16])
    stacked = stack_models(members, x, fmt)
    assert any(isinstance(m, torch.nn.ReLU) and m.inplace for m in stacked.modules())  # ReLU after BN runs in place
    xs = torch.stack([x, x.flip(0), x * 0.5])                       # different data per member
    got = from_blocks(stacked.train()(to_blocks(xs).contiguous(memory_format=fmt)), 3)
    got.square().sum().backward()
    grads = {n: p.grad for n, p in stacked.named_parameters()}
    for i, m in enumerate(members):
        want = m.train()(xs[i].contiguous(memory_format=fmt))
        want.square().sum().backward()
        assert torch.equal(got[i], want)
        for n, p in m.named_parameters():
            g = grads[n][i] if grads[n].dim() == 3 and p.dim() == 2 else grads[n].reshape(3, -1)[i]
            assert torch.equal(g.reshape(p.shape), p.grad), n
    twins = [build_model(r, data) for _ in members]
    unstack(stacked, twins)                                          # BN running stats moved per member too
    for m, t in zip(members, twins):
        for k, v in m.state_dict().items():
            assert torch.equal(v, t.state_dict()[k]), k


def test_grouped_kernels_alone_differ_in_the_last_bits(kws):
    """Why StackedConv2d probes: on this CPU some grouped float32 kernels are not the members' own (measured here:
    the 1-input-channel stem forward and the pointwise weight gradients in channels-last). exact=False keeps
    them grouped: equal only up to float rounding."""
    from toolkit.specialize.stack import StackedConv2d, from_blocks, stack_models, to_blocks

    r, data = kws
    cl = torch.channels_last
    members = [(torch.manual_seed(s), build_model(r, data).to(memory_format=cl))[1] for s in range(4)]
    x = torch.from_numpy(data.x_train[:32])
    exact = stack_models(members, x, cl)
    probed = {n: m.grouped for n, m in exact.named_modules() if isinstance(m, StackedConv2d)}
    assert not all(all(g.values()) for g in probed.values())          # at least one op runs member by member
    assert any(all(g.values()) for g in probed.values())              # and depthwise ones stay grouped
    fast = stack_models(members, x, cl, exact=False)
    xs = torch.stack([x, x.flip(0), x * 0.5, x * 2])
    for net in (exact, fast):
        from_blocks(net.train()(to_blocks(xs).contiguous(memory_format=cl)), 4).square().sum().backward()
    diffs = [float((a.grad - b.grad).abs().max()) for a, b in zip(exact.parameters(), fast.parameters())]
    assert 0 < max(diffs) < 1e-3


@pytest.mark.parametrize("exact", [True, False])
def test_batched_fleet_equals_sequential_twins(kws, exact):
    """exact (default): 4 members batched in float32 and the same 4 trained alone (2 AdamW epochs) have the same
    bits. exact=False: grouped kernels round differently; after 3 SGD steps they agree to float rounding (with
    AdamW, early steps divide near-zero gradients by their own magnitude and grow rounding into 1e-3-sized
    differences: bench/fleet.py)."""
    from toolkit.specialize.fleet import max_weight_diff, split_members, train_fleet

    r, data = kws
    cfg = dataclasses.replace(r.train, epochs=2 if exact else 1, batch_size=32, optimizer="adamw" if exact else "sgd",
                              lr=0.01 if exact else 0.05)
    make = lambda seed: (torch.manual_seed(seed), build_model(r, data))[1]  # noqa: E731
    runs = {}
    for batched in (True, False):
        members = split_members(data, 4, seed=0)
        for m in members:
            m.x_train, m.y_train = m.x_train[:128 if exact else 96], m.y_train[:128 if exact else 96]
        train_fleet(make, members, cfg, batched, stack=4, exact=exact)
        runs[batched] = members
    for a, b in zip(runs[True], runs[False]):
        assert a.name == b.name and a.seed == b.seed
        assert max_weight_diff(a.model, b.model) <= (0.0 if exact else 5e-4)     # weights and BN stats are O(1)
        assert a.test_top1 == b.test_top1
    assert len({m.name for m in runs[True]}) == 4
    torch.manual_seed(0)
    assert max_weight_diff(runs[True][0].model, make(0)) > 1e-3     # it did train


def test_float64_fleet_members_equal_their_twins(kws):
    """float64: 4 members batched and the same 4 trained alone (2 AdamW epochs): the same bits, the same predictions."""
    from toolkit.specialize.fleet import max_weight_diff, split_members, train_fleet

    r, data = kws
    cfg = dataclasses.replace(r.train, epochs=2, batch_size=32, optimizer="adamw", lr=0.01)
    make = lambda seed: (torch.manual_seed(seed), build_model(r, data).double())[1]  # noqa: E731
    runs = {}
    for batched in (True, False):
        members = split_members(data, 4, seed=0, dtype="float64")
        for m in members:
            m.x_train, m.y_train = m.x_train[:128], m.y_train[:128]
        train_fleet(make, members, cfg, batched, stack=4)
        runs[batched] = members
    for a, b in zip(runs[True], runs[False]):
        assert a.model.stem[0].weight.dtype == torch.float64
        assert max_weight_diff(a.model, b.model) == 0.0
        with torch.no_grad():
            x = torch.as_tensor(a.x_test)
            assert torch.equal(a.model(x).argmax(1), b.model(x).argmax(1))
    torch.manual_seed(0)
    assert max_weight_diff(runs[True][0].model, make(0)) > 1e-2     # it did train


def _short_fleet(r, data, make, workers: int) -> list:
    """4 members on 128 clips each, 2 AdamW epochs, stacks of 2, in `workers` processes."""
    from toolkit.specialize.fleet import split_members, train_fleet

    cfg = dataclasses.replace(r.train, epochs=2, batch_size=32, optimizer="adamw", lr=0.01)
    ms = split_members(data, 4, seed=0)
    for m in ms:
        m.x_train, m.y_train = m.x_train[:128], m.y_train[:128]
    train_fleet(make, ms, cfg, batched=True, stack=2, workers=workers)
    return ms


def test_workers_train_bit_identical_members(kws):
    """Stacks in 2 worker processes (1 thread each) give the same bits as the same stacks in this process."""
    from toolkit.specialize.fleet import max_weight_diff

    r, data = kws
    make = lambda seed: (torch.manual_seed(seed), build_model(r, data))[1]  # noqa: E731
    alone, forked = _short_fleet(r, data, make, workers=1), _short_fleet(r, data, make, workers=2)
    for a, b in zip(alone, forked):
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert a.name == b.name and sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), a.name
        assert a.test_top1 == b.test_top1
    torch.manual_seed(0)
    assert max_weight_diff(forked[0].model, make(0)) > 1e-2          # it did train


def test_fork_probe_and_in_process_fallback(kws, monkeypatch, caplog, tmp_path):
    """The probe: a forked child here can run backward (CPU torch starts no autograd device threads), also after a
    backward in this process. Where it cannot (CUDA torch after a backward: seen on a GPU machine, every worker died),
    the job trains its stacks in this process instead, with a warning that says how to get the workers back."""
    from toolkit.specialize import fleet

    x = torch.ones(3, requires_grad=True)
    (x * x).sum().backward()
    assert fleet.autograd_survives_fork()
    r, data = kws
    parent, log = os.getpid(), tmp_path / "pids"

    def make(seed):
        with log.open("a") as f:                                      # forked workers write here too
            f.write(f"{os.getpid()}\n")
        torch.manual_seed(seed)
        return build_model(r, data)

    monkeypatch.setattr(fleet, "autograd_survives_fork", lambda: False)
    with caplog.at_level("WARNING", logger="toolkit.specialize.fleet"):
        fell_back = _short_fleet(r, data, make, workers=2)
    pids = lambda: set(map(int, log.read_text().split()))  # noqa: E731
    assert pids() == {parent}
    assert "CUDA_VISIBLE_DEVICES" in caplog.text
    monkeypatch.undo()
    log.unlink()
    forked = _short_fleet(r, data, make, workers=2)
    assert len(pids() - {parent}) == 2                                # the two workers trained this time
    assert [m.extra["workers"] for m in fell_back + forked] == [1] * 4 + [2] * 4   # what fleet.json records
    assert all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k])
               for a, b in zip(fell_back, forked) for k in a.model.state_dict())


@pytest.mark.parametrize("death,why", [("kill", r"code -9 .*\(killed by signal 9\)"),
                                       ("raise", r"code 1 .*: seed 3 is cursed(.|\n)*fix: pick another seed")],
                         ids=["killed", "raised"])
def test_dead_worker_names_its_stack_and_exit_code(kws, death, why):
    """A worker that dies (SIGKILL) or raises gives one EdgetkError naming the worker, stack, members and exit code."""
    import signal

    from toolkit.errors import EdgetkError

    r, data = kws
    parent = os.getpid()

    def make(seed):
        if seed == 3 and os.getpid() != parent:                      # member 3: stack 1, worker 1
            if death == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise EdgetkError("seed 3 is cursed", fix="pick another seed")
        torch.manual_seed(seed)
        return build_model(r, data)

    with pytest.raises(EdgetkError, match=r"fleet worker 1 exited with " + why) as e:
        _short_fleet(r, data, make, workers=2)
    assert "while training stack 1 (lucas, nicolas)" in str(e.value)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fleet_job_writes_exportable_member_runs(kws, tmp_path, dtype):
    from toolkit.specialize import run_recipe
    from toolkit.train import load_run

    r, data = kws
    recipe = r.replace(train=dataclasses.replace(r.train, epochs=1, batch_size=64),
                       extra={"fleet": FleetConfig(members=8, dtype=dtype)})
    out = run_recipe(recipe, tmp_path / "fleet")
    summary = json.loads((out / "fleet.json").read_text())
    assert len(summary["members"]) == 8 and summary["batched"] and summary["dtype"] == dtype
    assert summary["workers"] == min(len(os.sched_getaffinity(0)), 2)      # workers = 0: a core each, 2 stacks
    assert summary["exact"] is True                                        # members bit-identical to their twins
    for m in summary["members"]:          # float32 weights of a float64 fleet: the same top-1 within a clip (0.02)
        assert abs(m["value"] - m["trained_value"]) <= 0.02 + 1e-9, m
    names = [m["name"] for m in summary["members"]]
    assert len(set(names)) == 8 and {n.rsplit("-", 1)[0] for n in names} == set(data.groups_train.tolist())
    run = load_run(out / names[7])
    assert run.recipe.fleet is None and run.recipe.train.seed == 7
    assert all(v.dtype == torch.float32 for v in run.model.state_dict().values() if v.is_floating_point())
    assert run.metrics["fleet_member"] == names[7] and run.metrics["n_test"] == 50
    assert run.recipe.data.groups == (names[7].rsplit("-", 1)[0],)
    from toolkit.export.bundle import load_run_checked

    load_run_checked(out / names[7])        # export's gate: the reloaded member reproduces its recorded metric
