"""Fit-to-target: the widest width that fits, the binding limit, and the activation memory plan."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from toolkit.errors import EdgetkError
from toolkit.nn import build_model
from toolkit.recipe import load_recipe
from toolkit.specialize.fit import FitBudget, arena_bytes, budget_for, fit_width, footprint


pytestmark = pytest.mark.usefixtures("one_torch_thread")


WIDTHS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
ROOMY = FitBudget(flash_bytes=10**9, ram_bytes=10**9, macs=10**12)


@pytest.fixture(scope="module")
def kws(shared):
    from toolkit.data import load_dataset

    r = load_recipe("models/kws-digits.toml")
    return r, load_dataset(r)


def _fp(recipe, data, width):
    torch.manual_seed(0)
    r = recipe.replace(model=dataclasses.replace(recipe.model, width=width))
    return footprint(build_model(r, data), data.input_shape, ROOMY)


def test_dscnn_arena_is_largest_input_plus_output(kws):
    recipe, data = kws
    torch.manual_seed(0)
    model = build_model(recipe, data)                       # 64 channels on a 25x5 map after the stem
    assert arena_bytes(model, data.input_shape) == 2 * 64 * 25 * 5


def test_residual_arena_keeps_the_skip_alive(shared):
    from toolkit.data import load_dataset

    r = load_recipe("models/image-digits.toml")
    data = load_dataset(r)
    torch.manual_seed(0)
    model = build_model(r, data)
    arena = arena_bytes(model, data.input_shape)
    sizes = [m.numel() for m in _outputs(model, data.input_shape)]
    assert arena > max(a + b for a, b in zip(sizes, sizes[1:]))  # more than any producer/consumer pair


def _outputs(model, shape):
    outs = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o)) for m in model.modules()
             if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros((1, *shape)))
    for h in hooks:
        h.remove()
    return outs


@pytest.mark.parametrize("limit", ["flash", "ram", "macs"])
def test_each_limit_can_bind(kws, limit):
    recipe, data = kws
    at1, at15 = _fp(recipe, data, 1.0), _fp(recipe, data, 1.5)
    cut = {"flash": (at1.flash_bytes + at15.flash_bytes) // 2, "ram": (at1.ram_bytes + at15.ram_bytes) // 2,
           "macs": (at1.macs + at15.macs) // 2}[limit]
    budget = dataclasses.replace(ROOMY, **{"flash_bytes" if limit == "flash" else "ram_bytes" if limit == "ram"
                                           else "macs": cut})
    res = fit_width(recipe, data, budget, WIDTHS)
    assert (res.width, res.binding, res.next_width) == (1.0, limit, 1.5)
    assert res.footprint == at1 and limit in res.summary()


def test_roomy_target_takes_the_widest(kws):
    recipe, data = kws
    res = fit_width(recipe, data, ROOMY, WIDTHS)
    assert (res.width, res.binding, res.next_width) == (2.0, "max-width", None)


def test_nothing_fits_names_the_limit(kws):
    recipe, data = kws
    with pytest.raises(EdgetkError, match="even width 0.25 needs .* over the target's ram budget"):
        fit_width(recipe, data, dataclasses.replace(ROOMY, ram_bytes=1000), WIDTHS)


def test_real_targets_budget_and_cli(kws, tmp_path, capsys):
    from toolkit.cli import main
    from toolkit.targets import get_target

    recipe, data = kws
    m4 = budget_for(get_target("qemu-m4"), latency_ms=1000)
    assert m4.macs == 25_000_000 // 8 and m4.flash_bytes == 4_194_304
    l4 = fit_width(recipe, data, budget_for(get_target("nucleo-l4r5zi"), 1000), WIDTHS)
    q4 = fit_width(recipe, data, m4, WIDTHS)
    assert l4.width > q4.width and q4.binding == "macs"          # the 120 MHz board affords a wider model
    code = main(["train", "models/kws-digits.toml", "--fit-target", "qemu-m4", "--fit-latency-ms", "200",
                 "--set", "train.epochs=1", "-o", str(tmp_path / "run")])
    assert code == 0
    err = capsys.readouterr().err
    assert "binding limit: macs" in err
    from toolkit.train import load_run

    run = load_run(tmp_path / "run")
    assert run.metrics["macs"] <= 25_000_000 / 8 * 0.2 < _fp(recipe, data, run.recipe.model.width + 0.125).macs
