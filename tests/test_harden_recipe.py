"""Recipe values out of range (issue #14 item 3): one EdgetkError naming file, field, value and valid range.

Before: epochs <= 0 / negative batch_size trained nothing and exported an untrained bundle with exit 0;
threads <= 0, width <= 0 were accepted; batch 0, negative or NaN lr, dropout 2, label_smoothing 5, seed -1
or 1e20 and a non-UTF-8 file ended in tracebacks.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from toolkit.errors import EdgetkError
from toolkit.paths import REPO_ROOT, repo_dir
from toolkit.recipe import BOUNDS, OPTIONAL_SECTIONS, SECTIONS, load_recipe

BASE = 'task = "t"\n[data]\nname = "digits"\n[model]\narch = "resnet"\n'


def write(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "r.toml"
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


BAD = [
    ("train", "epochs", "0"), ("train", "epochs", "-3"), ("train", "batch_size", "0"), ("train", "batch_size", "-8"),
    ("train", "threads", "0"), ("train", "threads", "-1"), ("model", "width", "0.0"), ("model", "width", "-1.0"),
    ("train", "lr", "-0.1"), ("train", "lr", "nan"), ("train", "lr", "inf"), ("model", "dropout", "2.0"),
    ("train", "label_smoothing", "5.0"), ("train", "seed", "-1"), ("train", "seed", "100000000000000000000"),
    ("train", "weight_decay", "-1.0"), ("pretrain", "mask_ratio", "1.5"), ("pretrain", "epochs", "0"),
    ("distill", "temperature", "0.0"), ("distill", "alpha", "1.5"), ("finetune", "rank", "0"),
    ("fleet", "stack", "0"), ("fleet", "members", "-2"), ("data", "split_seed", "-1"),
    ("data", "train_fraction", "nan"),
]


@pytest.mark.parametrize("section, field, value", BAD, ids=[f"{s}.{f}={v}" for s, f, v in BAD])
def test_out_of_range_value_is_one_error_naming_file_field_value_range(tmp_path, section, field, value):
    text = BASE.replace(f"[{section}]\n", f"[{section}]\n{field} = {value}\n") if f"[{section}]" in BASE else \
        BASE + f"[{section}]\n" + ('base_run = "x"\n' if section == "finetune" else "") + f"{field} = {value}\n"
    p = write(tmp_path, text)
    with pytest.raises(EdgetkError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert str(p) in msg and f"{section}.{field}" in msg and "fix:" in msg, msg
    assert "range" in msg or "finite" in msg or "minimum" in msg, msg


def test_overrides_are_range_checked_too():
    with pytest.raises(EdgetkError, match=r"train.epochs = 0 .*range \[1, "):
        load_recipe(repo_dir("models") / "image-digits.toml", ["train.epochs=0"])


def test_in_range_values_still_load(tmp_path):
    r = load_recipe(write(tmp_path, BASE + "[train]\nepochs = 1\nbatch_size = 1\nlr = 1e-6\nseed = 0\nthreads = 1\n"
                                          "label_smoothing = 0.0\n[fleet]\nmembers = 0\n"))
    assert (r.train.epochs, r.train.batch_size, r.train.seed) == (1, 1, 0)
    for task in ("kws-digits", "imu-motions", "ecg-anomaly", "image-digits", "kws-digits-distill",
                 "kws-digits-fleet", "kws-digits-peft", "kws-digits-pretrain"):
        load_recipe(repo_dir("models") / f"{task}.toml")


def test_non_utf8_recipe_is_one_error(tmp_path):
    p = write(tmp_path, BASE.encode() + b'description = "caf\xe9"\n')
    with pytest.raises(EdgetkError, match=r"not UTF-8.*0xe9"):
        load_recipe(p)
    with pytest.raises(EdgetkError, match="recipe is a folder"):
        load_recipe(tmp_path)


def test_every_numeric_field_has_bounds():
    """A numeric field without a range would let 10**30 through to torch/numpy (OverflowError)."""
    missing = []
    for name, cls in {**SECTIONS, **OPTIONAL_SECTIONS}.items():
        if name == "frontend":   # FrontendConfig.validate() owns its ranges (toolkit/frontends)
            continue
        checked_elsewhere = {"data.test_fraction"}  # recipe.check_data
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            h = hints[f.name]
            inner = typing.get_args(h)[0] if typing.get_origin(h) is tuple else h
            if inner in (int, float) and f"{name}.{f.name}" not in BOUNDS | dict.fromkeys(checked_elsewhere):
                missing.append(f"{name}.{f.name}")
    assert not missing, missing


def test_cli_epochs_zero_exits_2_without_training(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "toolkit", "train", str(repo_dir("models") / "image-digits.toml"),
                           "--set", "train.epochs=0", "-o", str(out)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "train.epochs = 0" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
