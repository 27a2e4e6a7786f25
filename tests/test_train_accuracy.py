"""Acceptance floors: each task trained with the short test schedule on its real data."""
from __future__ import annotations

import json

import pytest

from toolkit.train import load_run

FLOORS = {  # task: (metric, floor, max params)
    "kws-digits": ("test_top1", 0.90, 100_000),
    "imu-motions": ("test_top1", 0.85, None),
    "ecg-anomaly": ("test_auc", 0.85, None),
    "image-digits": ("test_top1", 0.95, None),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(FLOORS))
def test_task_reaches_floor(trained_run, task: str) -> None:
    run_dir = trained_run(task)
    metric, floor, max_params = FLOORS[task]
    m = json.loads((run_dir / "metrics.json").read_text())
    print(f"{task}: {metric}={m[metric]:.4f} (floor {floor}), params={m['params']}, macs={m['macs']}")
    assert m["metric"] == metric and m["value"] == m[metric]
    assert m[metric] >= floor
    if max_params:
        assert m["params"] <= max_params
    assert m["params"] > 0 and m["macs"] > 0
    if m["kind"] == "classification":
        confusion = m["confusion"]
        assert sum(map(sum, confusion)) == m["n_test"]
        assert sum(confusion[i][i] for i in range(len(confusion))) / m["n_test"] == pytest.approx(m["test_top1"])


@pytest.mark.slow
def test_run_folder_layout_and_load_run(trained_run) -> None:
    import torch

    run_dir = trained_run("imu-motions")
    for name in ("recipe.toml", "model.safetensors", "metrics.json", "curve.png", "checkpoints/last.pt", "history.jsonl"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    run = load_run(run_dir)
    assert len(history) == run.recipe.train.epochs == run.metrics["epochs"]
    assert not run.model.training
    x = torch.from_numpy(run.data.x_test)
    with torch.no_grad():
        top1 = (run.model(x).argmax(1).numpy() == run.data.y_test).mean()
    assert top1 == pytest.approx(run.metrics["test_top1"])
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == run.recipe.train.epochs
    assert set(ckpt["rng"]) == {"torch", "numpy", "python"}
