"""Fleets that specialize one shared base ([fleet] mode = "specialize"): a tiny real fleet on FSDD.

The job trains the base once (the shipped recipe then fine-tunes it once per speaker), caches the frozen
activations per speaker and trains every member's top above them; each member is written as a plain DS-CNN run
folder whose outputs equal its unmerged specialization (frozen network below the cut + the member's top, LoRA
unfolded) and whose frozen layers are its speaker's network (the base, or the base fine-tuned), bit for bit.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from toolkit.cli import main
from toolkit.errors import EdgetkError
from toolkit.paths import repo_dir
from toolkit.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RECIPE = repo_dir("models") / "kws-digits-fleet-shared.toml"
TINY = ["train.epochs=1", "train.batch_size=64", "fleet.members=3", 'data.groups=["george", "jackson", "lucas"]']


@pytest.fixture(scope="module")
def fleet(shared, tmp_path_factory) -> Path:
    """The shipped recipe, tiny: base trained 1 epoch into <out>/base on 3 speakers, 3 members' heads 1 epoch."""
    out = tmp_path_factory.mktemp("shared-fleet") / "fleet"
    args = ["train", str(RECIPE), "-o", str(out), "-q"]
    for s in TINY:
        args += ["--set", s]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def base_and_data(fleet):
    from toolkit.data import load_dataset
    from toolkit.train import load_run

    return load_run(fleet / "base"), load_dataset(load_recipe(RECIPE, TINY))


def test_job_writes_plain_member_runs_over_the_shared_base(fleet, base_and_data):
    """The shipped recipe fine-tunes the base once per speaker ([fleet] group_epochs) before the members' heads:
    below the cut each member is its speaker's network bit for bit (recomputed here: the job is deterministic),
    which moved away from the base; above it, its own trained classifier."""
    from toolkit.specialize.fleet import chain_of, cut_index, group_config, group_model, split_members
    from toolkit.train import load_run

    base, data = base_and_data
    recipe = load_recipe(RECIPE, TINY)
    summary = json.loads((fleet / "fleet.json").read_text())
    assert summary["mode"] == "specialize" and summary["peft"] == "probe" and len(summary["members"]) == 3
    assert summary["base_run"] == str(fleet / "base") and summary["base_seconds"] > 0
    assert summary["top_epochs"] == recipe.fleet.epochs > 0                   # [fleet] epochs, not [train]'s 1
    assert summary["group_epochs"] == recipe.fleet.group_epochs > 0 and summary["group_seconds"] > 0
    assert len((fleet / "base" / "history.jsonl").read_text().splitlines()) == 1
    example = torch.as_tensor(data.x_test[:2])
    parts = chain_of(base.model, example)
    cut = cut_index(parts, "probe", 2)                               # the shipped recipe: the classifier trains
    cfg = group_config(recipe.train, recipe.fleet.group_epochs, recipe.fleet.group_lr)
    for row, m in zip(summary["members"], split_members(data, 3, recipe.train.seed)):
        run = load_run(Path(row["run_dir"]))
        assert type(run.model) is type(base.model) and run.recipe.fleet is None
        assert run.model.state_dict().keys() == base.model.state_dict().keys()
        mparts = chain_of(run.model, example)
        gparts = chain_of(group_model(base.model, m.x_train, m.y_train, cfg), example)
        for i in range(cut):                                         # below the cut: its speaker's network
            for k, v in gparts[i].state_dict().items():
                assert torch.equal(v, mparts[i].state_dict()[k]), (row["name"], i, k)
        assert not torch.equal(mparts[0].weight, parts[0].weight)   # which the fine-tune moved off the base
        top_w = [torch.equal(p.weight, q.weight) for p, q in zip(gparts[cut:], mparts[cut:]) if hasattr(p, "weight")]
        assert not all(top_w), "the member's top trained"
        assert run.metrics["fleet_member"] == row["name"] and run.metrics["n_test"] == 50


@pytest.mark.parametrize("peft", ["top", "lora", "probe", "bitfit"])
def test_merged_member_equals_its_unmerged_specialization(base_and_data, peft):
    from toolkit.recipe import TrainConfig
    from toolkit.specialize.fleet import chain_of, frozen_features, split_members, train_shared_fleet

    base, data = base_and_data
    members = split_members(data, 3, 0)
    t = train_shared_fleet(base.model, members, TrainConfig(epochs=1, batch_size=64, lr=0.01), peft, stack=3)
    parts = chain_of(base.model, torch.as_tensor(data.x_test[:2]))
    assert t["cut"] == (len(parts) - 1 if peft == "probe" else t["cut"]) and 0 < t["trainable_params"]
    for m in members:
        x = torch.as_tensor(m.x_test)
        with torch.no_grad():
            unmerged = m.extra["top"](frozen_features(parts, t["cut"], m.x_test))
            merged = m.model(x)
        assert type(m.model) is type(base.model)
        assert torch.allclose(merged, unmerged, rtol=0, atol=1e-4), float((merged - unmerged).abs().max())
        if peft == "lora":
            assert any("lora_A" in n for n, _ in m.extra["top"].named_parameters())
            assert not any("lora" in k for k in m.model.state_dict())
    assert all(np.isfinite(m.test_top1) for m in members)


def test_lora_member_exports_equal_to_its_unmerged_specialization(base_and_data, tmp_path):
    """The merged member through export's own fp32 ONNX step, run by ONNX Runtime, against base + unfolded LoRA."""
    import onnxruntime as ort

    from toolkit.export.onnx_fp32 import export_fp32
    from toolkit.recipe import TrainConfig
    from toolkit.specialize.fleet import chain_of, frozen_features, split_members, train_shared_fleet

    base, data = base_and_data
    m = split_members(data, 1, 5)[0]
    t = train_shared_fleet(base.model, [m], TrainConfig(epochs=1, batch_size=64, lr=0.01), "lora")
    path = export_fp32(m.model, m.x_test[0], tmp_path / "member.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    parts = chain_of(base.model, torch.as_tensor(m.x_test[:2]))
    with torch.no_grad():
        want = m.extra["top"](frozen_features(parts, t["cut"], m.x_test[:8])).numpy()
    got = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: m.x_test[i:i + 1]})[0] for i in range(8)])
    assert np.abs(got - want).max() < 1e-4


def test_base_of_another_architecture_is_refused(fleet, tmp_path, capsys):
    rc = main(["train", str(RECIPE), "-o", str(tmp_path / "x"), "--set", f"fleet.base={fleet / 'base'}",
               "--set", "model.width=0.5", *sum((["--set", s] for s in TINY), [])])
    err = capsys.readouterr().err
    assert rc == 2 and "the fleet's base run" in err and "wants kws-digits" in err and "make [model] match" in err
    assert "Traceback" not in err


def test_unknown_peft_is_refused_on_load():
    with pytest.raises(EdgetkError, match="fleet.peft"):
        load_recipe(RECIPE, ["fleet.peft=adapter"])


def test_a_forward_that_is_not_a_chain_is_refused():
    from toolkit.specialize.fleet import chain_of

    class Branches(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x) + self.b(x)

    with pytest.raises(EdgetkError, match="not a chain of its layers") as e:
        chain_of(Branches(), torch.ones(2, 4))
    assert 'mode = "scratch"' in e.value.fix


def test_fleet_epochs_sets_the_tops_training(base_and_data):
    """[fleet] epochs (0 = [train] epochs) is what the members' tops train for: more epochs, other weights."""
    from toolkit.recipe import TrainConfig
    from toolkit.specialize.fleet import split_members, tops_config, train_shared_fleet

    base, data = base_and_data
    train = TrainConfig(epochs=1, batch_size=64, lr=0.01)
    assert tops_config(train, 0) is train and tops_config(train, 3).epochs == 3
    heads = []
    for epochs in (0, 3):
        m = split_members(data, 1, 7)
        train_shared_fleet(base.model, m, tops_config(train, epochs), "probe")
        heads.append(m[0].model.head[3].weight.detach().clone())
    assert not torch.equal(*heads)


def test_load_run_takes_the_loaded_dataset_and_still_checks_its_split(fleet, base_and_data):
    """load_run(data=): a job that just trained the run passes its dataset instead of reading it again; the
    run's recorded split is still checked against it."""
    from toolkit.data import load_dataset
    from toolkit.train import load_run

    base, data = base_and_data
    again = load_run(fleet / "base", data=data)
    assert again.data is data and all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(),
                                                                         base.model.state_dict().values()))
    other = load_dataset(load_recipe(RECIPE, [*TINY[:-1], 'data.groups=["george", "jackson"]']))
    with pytest.raises(EdgetkError):
        load_run(fleet / "base", data=other)


def test_group_fine_tune_gives_each_group_its_own_network(base_and_data):
    """[fleet] group_epochs: the whole base is fine-tuned once per group (every layer moves, the base itself does
    not), that group's members are plain copies of its network with their own classifier, and the fine-tune is
    deterministic (the same weights again)."""
    from toolkit.recipe import TrainConfig
    from toolkit.specialize.fleet import group_config, group_model, split_members, train_shared_fleet

    base, data = base_and_data
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    train = TrainConfig(epochs=1, batch_size=64, lr=0.01)
    assert group_config(train, 0, 0.005) is None
    cfg = group_config(train, 2, 0.005)
    assert cfg.epochs == 2 and cfg.lr == 0.005 and cfg.batch_size == 64
    members = split_members(data, 4, 3)                       # 3 speakers: one of them twice
    t = train_shared_fleet(base.model, members, train, "probe", group_cfg=cfg)
    assert t["group_s"] > 0
    assert all(torch.equal(v, base.model.state_dict()[k]) for k, v in before.items())   # the base is untouched
    for m in members:
        tuned = group_model(base.model, m.x_train, m.y_train, cfg)
        sd, bsd = m.model.state_dict(), base.model.state_dict()
        stem = "stem.0.weight"
        assert torch.equal(sd[stem], tuned.state_dict()[stem])          # below the top: the group's network
        assert not torch.equal(sd[stem], bsd[stem])                      # which moved away from the base
        assert not torch.equal(sd["head.3.weight"], tuned.state_dict()["head.3.weight"])   # its own classifier
    same = [m for m in members if m.group == members[0].group]
    assert len(same) == 2 and torch.equal(same[0].model.state_dict()["blocks.3.1.0.weight"],
                                          same[1].model.state_dict()["blocks.3.1.0.weight"])


def test_members_are_independent_plain_models(base_and_data):
    """Every merged member owns its tensors: none shares memory with another member, its group's network or the
    base, so changing one member's weights leaves the others alone; each is in eval mode with every parameter
    trainable."""
    from toolkit.recipe import TrainConfig
    from toolkit.specialize.fleet import split_members, train_shared_fleet

    base, data = base_and_data
    members = split_members(data, 4, 3)                       # 3 speakers: one of them twice
    train_shared_fleet(base.model, members, TrainConfig(epochs=1, batch_size=64, lr=0.01), "probe")
    owners = [base.model, *(m.model for m in members), *(m.extra["top"] for m in members)]
    ptrs = [t.data_ptr() for o in owners for t in [*o.parameters(), *o.buffers()]]
    assert len(ptrs) == len(set(ptrs))
    for m in members:
        assert type(m.model) is type(base.model) and not any(x.training for x in m.model.modules())
        assert all(p.requires_grad for p in m.model.parameters())
    assert members[0].group == members[3].group
    before = [o.stem[0].weight.clone() for o in (base.model, members[3].model)]
    with torch.no_grad():
        members[0].model.stem[0].weight.add_(1)
    assert all(torch.equal(o.stem[0].weight, b) for o, b in zip((base.model, members[3].model), before))
