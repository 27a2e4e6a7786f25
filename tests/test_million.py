"""Million-parameter specialists: the image-digits ResNet scales to 0.5-1.5 M parameters, `--fit-target
nucleo-h743zi` (2 MB flash) picks the 1.2 M-parameter width, and such a model goes through the whole
pipeline: train, int8 export (ONNX/TFLite), generated C on the emulated Cortex-M7 that stands in for the
board, fit and profile there, outputs bit-exact with TFLite-Micro. The test trains a 0.58 M-parameter
width (2.75) for one epoch to stay fast; the shipped 1.2 M-parameter recipe's own run is in bench/RESULTS.md.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from conftest import require_tool
from toolkit.cli import main
from toolkit.hil.checks import PASS
from toolkit.paths import repo_dir
from toolkit.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RECIPE = repo_dir("models") / "image-digits-1m.toml"


@pytest.fixture(scope="module")
def digits(shared):
    from toolkit.data import load_dataset

    r = load_recipe(RECIPE)
    return r, load_dataset(r)


def test_recipe_is_a_million_parameter_model(digits):
    from toolkit.nn import build_model
    from toolkit.nn.profile import profile_model

    r, data = digits
    torch.manual_seed(0)
    big = profile_model(build_model(r, data), data.input_shape)
    small = profile_model(build_model(r.replace(model=dataclasses.replace(r.model, width=1.0)), data), data.input_shape)
    assert 1_000_000 <= big.params <= 1_500_000 and big.params > 15 * small.params
    assert big.macs < 20_000_000


def test_fit_target_h743_picks_the_million_parameter_width(digits, capsys):
    from toolkit.nn import build_model
    from toolkit.specialize.fit import apply_fit, budget_for, fit_width
    from toolkit.targets import get_target

    r, data = digits
    small = r.replace(model=dataclasses.replace(r.model, width=1.0))
    fitted = apply_fit(small, "nucleo-h743zi")
    assert fitted.model.width == r.model.width == 4.0
    assert "nucleo-h743zi: fit: width 4.0" in capsys.readouterr().err
    torch.manual_seed(0)
    assert sum(p.numel() for p in build_model(fitted, data).parameters()) > 1_000_000
    # the same model does not fit a board with half the flash: the fit stops below it, at the flash limit
    half = dataclasses.replace(budget_for(get_target("nucleo-h743zi")), flash_bytes=1 << 20)
    res = fit_width(small, data, half, (1.0, 2.0, 3.0, 4.0))
    assert (res.width, res.binding, res.next_width) == (3.0, "flash", 4.0)


def test_pipeline_on_the_emulated_m7(digits, tmp_path, capsys):
    """train -> int8 ONNX/TFLite -> C on qemu-m7 (nucleo-h743zi's emulator): fits, profiled, bit-exact with TFLM."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    sets = ["model.width=2.75", "train.epochs=1", "data.test_fraction=0.05"]
    assert main(["train", str(RECIPE), "-o", str(run), "-q", *sum((["--set", s] for s in sets), [])]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 500_000 <= metrics["params"] <= 1_500_000 and metrics["value"] > 0.5
    assert main(["export", str(run), "-o", str(bundle), "--calib", "32", "-q"]) == 0
    assert (bundle / "model_int8.onnx").is_file() and (bundle / "model_int8.tflite").is_file()
    capsys.readouterr()
    rc = main(["validate", str(bundle), "--target", "nucleo-h743zi", "--allow-fallback", "--samples", "2",
               "-o", str(tmp_path / "v"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in doc["checks"]}
    assert rc == 0 and doc["ran_on"] == "qemu-m7", doc
    assert checks["outputs_vs_tflm"]["verdict"] == PASS and "bit-exact" in checks["outputs_vs_tflm"]["detail"]
    rep = json.loads((tmp_path / "v" / "report.json").read_text())
    cap = rep["capacity"]                        # the qemu-m7 build measured against the board's own file
    assert cap["target"] == "nucleo-h743zi" and cap["flash"]["fits"] and cap["ram"]["fits"]
    assert cap["flash"]["limit"] == 2 * 1024 * 1024 and 500_000 < cap["flash"]["used"] < cap["flash"]["limit"]
    assert rep["instructions"]["per_inference"] > 1_000_000
    assert rep["board_estimate"] is None         # no cycle model for the board: no latency claimed for it
