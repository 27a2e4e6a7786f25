"""Models: width multiplier, export-friendly ops only, profile MACs checked by hand, `edgetk info`."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from toolkit.data import load_dataset
from toolkit.errors import EdgetkError
from toolkit.nn import build_model
from toolkit.nn.profile import profile_model
from toolkit.paths import REPO_ROOT, repo_dir
from toolkit.recipe import load_recipe

TASKS = ["kws-digits", "imu-motions", "ecg-anomaly", "image-digits"]
EXPORTABLE = (nn.Conv2d, nn.Linear, nn.ReLU, nn.ReLU6, nn.BatchNorm2d, nn.AvgPool2d, nn.MaxPool2d,
              nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Identity)


def built(task: str, *overrides: str) -> tuple[nn.Module, tuple[int, ...]]:
    r = load_recipe(repo_dir("models") / f"{task}.toml", list(overrides))
    d = load_dataset(r)
    torch.manual_seed(0)
    return build_model(r, d), d.input_shape


@pytest.mark.parametrize("task", TASKS)
def test_width_multiplier_and_export_friendly_ops(task: str, shared) -> None:
    small, shape = built(task, "model.width=0.5")
    full, _ = built(task)
    p_small, p_full = profile_model(small, shape), profile_model(full, shape)
    assert p_small.params < p_full.params and p_small.macs < p_full.macs
    assert p_small.output_shape == p_full.output_shape
    leaves = [m for m in full.modules() if not list(m.children())]
    assert all(isinstance(m, EXPORTABLE) for m in leaves), {type(m).__name__ for m in leaves}
    out = full.eval()(torch.zeros(2, *shape))
    assert tuple(out.shape) == (2, *p_full.output_shape)


def test_same_seed_same_init(shared) -> None:
    a, _ = built("image-digits")
    b, _ = built("image-digits")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_dscnn_matches_mlperf_kws_size(shared) -> None:
    model, shape = built("kws-digits")
    p = profile_model(model, shape)
    # MLPerf Tiny DS-CNN has 12 outputs (2,656,768 MACs); ours has 10: 64 x 2 fewer MACs in the head.
    assert p.macs == 2_656_768 - 2 * 64
    # MLPerf's TFLite DS-CNN: 22,604 params, BN folded into 9 conv biases of 64. Ours: 2 classes fewer
    # (64 x 2 weights + 2 biases), bias-free convs, BatchNorm gamma/beta (2 x 64) after each of the 9.
    assert p.params == 22_604 - (64 * 2 + 2) - 9 * 64 + 9 * 2 * 64
    assert [r.output_shape for r in p.layers if r.name == "stem.0"] == [(64, 25, 5)]


def test_profile_macs_by_hand() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    p = profile_model(model, (3, 10, 10))
    assert [r.macs for r in p.layers] == [8 * 100 * 3 * 9, 0, 8 * 100 * 9, 0, 0, 40]
    assert p.params == (3 * 9 * 8 + 8) + (8 * 9 + 8) + (40 + 5)
    assert p.output_shape == (5,)
    assert "total" in p.table()


def test_unknown_arch_suggests() -> None:
    with pytest.raises(EdgetkError, match="did you mean 'resnet'"):
        built("image-digits", "model.arch=resnt")


def test_info_command_prints_table() -> None:
    proc = subprocess.run([sys.executable, "-m", "toolkit", "info", "models/imu-motions.toml"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "features.0.0" in proc.stdout and "Conv2d" in proc.stdout
    assert "304,128" in proc.stdout  # total MACs of the 1-D CNN at width 1.0
