"""PEFT mechanics: every mergeable mode folds into exactly the base architecture; adapters refuse."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from toolkit.errors import EdgetkError
from toolkit.nn import build_model
from toolkit.nn.profile import profile_model
from toolkit.recipe import FinetuneConfig, load_recipe
from toolkit.specialize.peft import LoRAConv2d, LoRALinear, apply_peft, merge_peft, trainable_params


pytestmark = pytest.mark.usefixtures("one_torch_thread")


TASKS = {"kws-digits": 0.25, "image-digits": 0.5, "imu-motions": 0.5}


@pytest.fixture(scope="module")
def datasets(shared):
    from toolkit.data import load_dataset

    out = {}
    for task, width in TASKS.items():
        r = load_recipe(f"models/{task}.toml", [f"model.width={width}"])
        out[task] = (r, load_dataset(r))
    return out


def _perturb(model: torch.nn.Module) -> None:
    """Stand-in for training: give every trainable tensor a non-zero random value."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("mode", ["full", "top", "probe", "bitfit", "lora"])
def test_merge_is_exact_and_keeps_base_footprint(datasets, task, mode):
    recipe, data = datasets[task]
    torch.manual_seed(0)
    model = build_model(recipe, data).eval()
    base = profile_model(model, data.input_shape)
    apply_peft(model, FinetuneConfig(base_run="", mode=mode, rank=4))
    if mode == "lora":
        assert any(isinstance(m, (LoRAConv2d, LoRALinear)) for m in model.modules())
    n_train = trainable_params(model)
    assert n_train > 0 and (n_train <= base.params or mode == "lora")
    _perturb(model)
    x = torch.from_numpy(data.x_test[:64])
    with torch.no_grad():
        before = model.eval()(x)
        merged = merge_peft(model).eval()
        after = merged(x)
    assert float((after - before).abs().max()) <= 1e-5
    prof = profile_model(merged, data.input_shape)
    assert (prof.params, prof.macs) == (base.params, base.macs)
    assert set(merged.state_dict()) == set(build_model(recipe, data).state_dict())


def test_trainable_counts_order(datasets):
    recipe, data = datasets["kws-digits"]
    counts = {}
    for mode in ("full", "top", "probe", "bitfit", "lora", "adapter"):
        torch.manual_seed(0)
        counts[mode] = trainable_params(apply_peft(build_model(recipe, data), FinetuneConfig(base_run="", mode=mode)))
    assert max(counts["probe"], counts["bitfit"], counts["lora"], counts["top"]) < counts["full"]
    assert max(counts["probe"], counts["bitfit"]) < counts["top"]
    assert counts["probe"] == 16 * 10 + 10                   # width 0.25: 16 features -> 10 classes


def test_adapters_cost_params_and_refuse_merge(datasets):
    recipe, data = datasets["kws-digits"]
    torch.manual_seed(0)
    model = build_model(recipe, data)
    base = profile_model(model, data.input_shape)
    apply_peft(model, FinetuneConfig(base_run="", mode="adapter", rank=4))
    prof = profile_model(model, data.input_shape)
    assert prof.params > base.params and prof.macs > base.macs
    with pytest.raises(EdgetkError, match="cannot be folded"):
        merge_peft(model)


def test_unknown_mode_names_the_valid_ones(datasets):
    recipe, data = datasets["imu-motions"]
    with pytest.raises(EdgetkError, match="lora"):
        apply_peft(build_model(recipe, data), FinetuneConfig(base_run="", mode="loraa"))


@pytest.fixture(scope="module")
def base(datasets, tmp_path_factory):
    """(short recipe, base run on 4 speakers, its bundle's manifest, the 2 new speakers)."""
    from toolkit.export import export_run
    from toolkit.train import load_run, train

    recipe, data = datasets["kws-digits"]
    speakers = sorted(set(data.groups_train.tolist()))
    recipe = recipe.replace(train=dataclasses.replace(recipe.train, epochs=2, batch_size=64))
    base_recipe = recipe.replace(data=dataclasses.replace(recipe.data, groups=tuple(speakers[:4])))
    base_dir = train(base_recipe, tmp_path_factory.mktemp("base") / "run")
    assert load_run(base_dir).data.x_train.shape[0] == 4 * 450
    bundle = export_run(base_dir, tmp_path_factory.mktemp("base") / "bundle", calib=32)
    return recipe, base_dir, json.loads((bundle / "manifest.json").read_text()), tuple(speakers[4:])


def _finetune(base, out, resume=False, **cfg):
    from toolkit.specialize import run_recipe

    recipe, base_dir, _, new = base
    ft = recipe.replace(data=dataclasses.replace(recipe.data, groups=new),
                        extra={"finetune": FinetuneConfig(base_run=str(base_dir), **cfg)})
    run = run_recipe(ft, out, resume=resume)
    return run, json.loads((run / "metrics.json").read_text())


def test_finetune_run_merges_into_plain_run(base, tmp_path):
    """Base on 4 speakers -> LoRA on the other 2 -> run folder loads as the base architecture; `edgetk merge` agrees."""
    from toolkit.cli import main
    from toolkit.train import load_run

    out, metrics = _finetune(base, tmp_path / "lora", mode="lora")
    assert metrics["merged"] and metrics["merge_max_abs_diff"] <= 1e-5
    assert (metrics["params"], metrics["macs"]) == (metrics["base_params"], metrics["base_macs"])
    assert 0 < metrics["trainable_params"] < metrics["params"]
    run = load_run(out)                                  # the plain loader rebuilds the base architecture
    with torch.no_grad():                                # and its weights score what metrics.json records
        top1 = float((run.model(torch.from_numpy(run.data.x_test)).argmax(1).numpy() == run.data.y_test).mean())
    assert metrics["metric"] == "test_top1" and len(run.data.y_test) == 2 * 50  # the 2 new speakers' test split
    assert top1 == pytest.approx(metrics["value"], abs=1.5 / len(run.data.y_test)) and top1 > 0.2  # chance 0.1; measured 0.29
    assert main(["merge", str(out), "-o", str(tmp_path / "merged")]) == 0
    again = json.loads((tmp_path / "merged" / "metrics.json").read_text())
    assert again["merge_max_abs_diff"] <= 1e-5 and again["value"] == pytest.approx(metrics["value"])
    assert main(["merge", str(base[1])]) == 2           # a run without [finetune]: clear error, no traceback
    from toolkit.export import export_run

    merged_m = json.loads((export_run(out, tmp_path / "b1", formats=("onnx",), calib=32) / "manifest.json").read_text())
    assert (merged_m["params"], merged_m["macs"], merged_m["ops"]) == tuple(base[2][k] for k in ("params", "macs", "ops"))


def test_adapter_run_exports_with_its_extra_cost(base, tmp_path):
    """An adapter run (not foldable) exports as base + adapters: 4 extra 1x1 conv pairs and ADDs, priced in metrics.json."""
    import numpy as np

    from toolkit.export import export_run
    from toolkit.runtimes import run_litert
    from toolkit.specialize.merge import load_peft_model
    from toolkit.train import load_run

    out, metrics = _finetune(base, tmp_path / "adapter", mode="adapter")
    assert not metrics["merged"] and metrics["deployed"] == "base + unmerged adapters"
    assert (metrics["extra_params"], metrics["extra_macs"]) == (4 * (16 * 4 + 4 + 4 * 16 + 16), 4 * 25 * 5 * 2 * 16 * 4)
    assert metrics["macs"] == metrics["base_macs"] + metrics["extra_macs"]
    assert _finetune(base, out, resume=True, mode="adapter") == (out, metrics)  # base reloaded, train() resumes
    x = torch.from_numpy(load_run(out).data.x_test)
    with torch.no_grad():       # load_run's model (adapters moved behind their BatchNorm) == the trained one
        assert float((load_run(out).model(x) - load_peft_model(out)[2](x)).abs().max()) <= 1e-5
    bundle = export_run(out, tmp_path / "bundle", calib=32)
    for name in ("model_fp32.onnx", "model_int8.onnx", "model_int8.tflite", "fidelity.json", "test_out_int8.npy"):
        assert (bundle / name).is_file(), name
    man, base_man = json.loads((bundle / "manifest.json").read_text()), base[2]
    assert man["macs"] > base_man["macs"] and man["params"] > base_man["params"]
    assert (man["params"] - base_man["params"], man["macs"] - base_man["macs"]) == (metrics["extra_params"], metrics["extra_macs"])
    assert man["ops"]["ADD"] == 4 and man["ops"]["CONV_2D"] == base_man["ops"]["CONV_2D"] + 8
    assert man["finetune"] == {k: metrics[k] for k in ("finetune_mode", "deployed", "extra_params", "extra_macs",
                                                       "base_params", "base_macs")}
    xq = np.load(bundle / "test_x_int8.npy")
    out_q = run_litert(bundle / "model_int8.tflite", xq)
    assert np.array_equal(out_q, np.load(bundle / "test_out_int8.npy"))
    assert float((out_q.argmax(1) == np.load(bundle / "test_y.npy")).mean()) == pytest.approx(man["int8_metric"])


def test_unmerged_lora_run_exports_as_base(base, tmp_path):
    """merge = false keeps LoRA layers in the run folder; load_run (hence export) folds them: the base's footprint."""
    from toolkit.export import export_run
    from toolkit.train import load_run

    out, metrics = _finetune(base, tmp_path / "lora", mode="lora", merge=False)
    assert not metrics["merged"] and metrics["params"] > metrics["base_params"]   # LoRA factors are in the file
    assert (metrics["deployed"], metrics["extra_params"], metrics["extra_macs"]) == ("base architecture", 0, 0)
    assert not any(isinstance(m, (LoRAConv2d, LoRALinear)) for m in load_run(out).model.modules())
    man = json.loads((export_run(out, tmp_path / "bundle", formats=("onnx",), calib=32) / "manifest.json").read_text())
    assert (man["params"], man["macs"], man["ops"]) == tuple(base[2][k] for k in ("params", "macs", "ops"))
