"""One clear EdgetkError for a damaged checkpoint, a resumed run with another recipe, or a reused run folder."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.errors import EdgetkError
from toolkit.paths import REPO_ROOT
from toolkit.recipe import load_recipe
from toolkit.train import load_run, train


def _copy_run(trained_run, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(trained_run("imu-motions"), dst)
    return dst


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not-a-checkpoint"])
def test_corrupted_checkpoint_is_one_clear_error(trained_run, tmp_path: Path, damage: str) -> None:
    import torch

    run = _copy_run(trained_run, tmp_path)
    ckpt = run / "checkpoints" / "last.pt"
    data = ckpt.read_bytes()
    if damage == "truncated":
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        ckpt.write_bytes(b"\x00garbage" * 100)
    elif damage == "empty":
        ckpt.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(3)}, ckpt)
    recipe = load_recipe(run / "recipe.toml")
    with pytest.raises(EdgetkError) as e:
        train(recipe, run, resume=True)
    assert str(ckpt) in str(e.value)
    want = "not an edgetk training checkpoint" if damage == "not-a-checkpoint" else "is corrupted"
    assert want in str(e.value)
    assert e.value.fix


def test_cli_corrupted_checkpoint_no_traceback(trained_run, tmp_path: Path) -> None:
    run = _copy_run(trained_run, tmp_path)
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    proc = subprocess.run([sys.executable, "-m", "toolkit", "train", "--resume", str(run)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "corrupted" in proc.stderr and "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_without_checkpoint(tmp_path: Path) -> None:
    recipe = load_recipe(REPO_ROOT / "models/imu-motions.toml")
    with pytest.raises(EdgetkError, match="no checkpoint to resume from"):
        train(recipe, tmp_path / "nothing", resume=True)


def test_resume_with_other_recipe_refused(trained_run, tmp_path: Path) -> None:
    run = _copy_run(trained_run, tmp_path)
    recipe = load_recipe(run / "recipe.toml", ["train.lr=0.1"])
    with pytest.raises(EdgetkError, match="recipe differs"):
        train(recipe, run, resume=True)


def test_existing_run_not_overwritten(trained_run, tmp_path: Path) -> None:
    run = _copy_run(trained_run, tmp_path)
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(EdgetkError, match="already holds a training run"):
        train(load_recipe(run / "recipe.toml"), run)
    assert (run / "model.safetensors").read_bytes() == before


def test_load_run_of_unfinished_run(trained_run, tmp_path: Path) -> None:
    run = _copy_run(trained_run, tmp_path)
    (run / "model.safetensors").unlink()
    with pytest.raises(EdgetkError, match="not a finished training run") as e:
        load_run(run)
    assert "--resume" in e.value.fix


def test_hooks_freeze_parameters_and_replace_loss(tmp_path: Path) -> None:
    """param_filter trains only the head; loss_fn is the one called."""
    import torch

    from toolkit.data import load_dataset
    from toolkit.nn import build_model

    recipe = load_recipe(REPO_ROOT / "models/imu-motions.toml", ["train.epochs=2"])
    data = load_dataset(recipe)
    torch.manual_seed(0)
    model = build_model(recipe, data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def loss_fn(m, x, y):
        calls.append(len(x))
        return torch.nn.functional.cross_entropy(m(x), y)

    train(recipe, tmp_path / "r", model=model, loss_fn=loss_fn, param_filter=lambda n, p: n.startswith("head."))
    after = model.state_dict()
    assert sum(calls) == 2 * len(data.x_train)
    assert torch.equal(before["features.0.0.weight"], after["features.0.0.weight"])
    assert not torch.equal(before["head.3.weight"], after["head.3.weight"])
