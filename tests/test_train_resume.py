"""Kill a real `edgetk train` subprocess after a checkpoint, resume it, and get bit-identical weights."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.paths import REPO_ROOT

EPOCHS = 20
ARGS = ["models/imu-motions.toml", "--set", f"train.epochs={EPOCHS}", "--json"]


def edgetk(*args: str) -> list[str]:
    return [sys.executable, "-m", "toolkit", *args]


def run_to_end(out: Path) -> None:
    subprocess.run(edgetk("train", *ARGS, "-o", str(out)), cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    killed = tmp_path / "killed"
    proc = subprocess.Popen(edgetk("train", *ARGS, "-o", str(killed)), cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if json.loads(line).get("epoch") == 5:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists()
    import torch

    stopped = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["epoch"]
    assert 5 <= stopped < EPOCHS

    resumed = subprocess.run(edgetk("train", "--resume", str(killed), "--json"), cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    epochs = [json.loads(x)["epoch"] for x in resumed.stdout.splitlines() if '"epoch"' in x and '"event": "epoch"' in x]
    assert epochs[0] == stopped + 1 and epochs[-1] == EPOCHS

    straight = tmp_path / "straight"
    run_to_end(straight)
    a, b = load_file(killed / "model.safetensors"), load_file(straight / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    hist = lambda d: [{k: v for k, v in json.loads(x).items() if k != "seconds"}  # noqa: E731
                      for x in (d / "history.jsonl").read_text().splitlines()]
    assert hist(killed) == hist(straight)


@pytest.mark.slow
def test_other_seed_gives_other_weights(tmp_path: Path, trained_run) -> None:
    from safetensors.numpy import load_file

    from toolkit.recipe import load_recipe
    from toolkit.train import train

    from conftest import TEST_OVERRIDES

    base = trained_run("imu-motions")
    recipe = load_recipe(REPO_ROOT / "models/imu-motions.toml", [*TEST_OVERRIDES["imu-motions"], "train.seed=1"])
    other = train(recipe, tmp_path / "seed1")
    a, b = load_file(base / "model.safetensors"), load_file(other / "model.safetensors")
    assert any(a[k].tobytes() != b[k].tobytes() for k in a)
