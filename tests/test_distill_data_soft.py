"""distill-data's soft labels (npz `soft` column -> trainer), trained-net snapshots and the smooth parametrisation,
on image-digits (real data, tiny schedules)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from toolkit.cli import main
from toolkit.errors import EdgetkError
from toolkit.paths import REPO_ROOT
from toolkit.recipe import load_recipe
from toolkit.train.distill_data import DistillDataConfig, distill, npz_recipe, real_init

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DIGITS = REPO_ROOT / "models" / "image-digits.toml"
TINY = ["model.width=0.25", "train.epochs=2"]


@pytest.fixture(scope="module")
def digits():
    from toolkit.data import load_dataset

    r = load_recipe(DIGITS, TINY)
    return r, load_dataset(r)


def _history_losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "history.jsonl").read_text().splitlines()]


def test_soft_labels_reach_the_npz_and_edgetk_train_on_the_written_recipe(tmp_path, capsys):
    from toolkit.data import load_dataset
    from toolkit.train import train

    out = tmp_path / "syn"
    assert main(["distill-data", str(DIGITS), "--per-class", "1", "--iterations", "3", "--soft-labels", "4",
                 *[a for s in TINY for a in ("--set", s)], "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["label_kind"] == "soft (temperature 4.0)" and 0.0 < doc["teacher_test_value"] <= 1.0
    with np.load(out / "synthetic.npz", allow_pickle=False) as z:
        soft, y, split = z["soft"], z["y"], z["split"]
    train_rows = split == "train"
    assert soft.shape == (10 + 360, 10) and soft.dtype == np.float32
    assert np.allclose(soft.sum(1), 1.0, atol=1e-5)
    assert (soft[train_rows].max(1) < 0.999).all()                       # soft (T = 4), not one-hot
    assert np.array_equal(soft[~train_rows], np.eye(10, dtype=np.float32)[y[~train_rows]])

    argv = ["--set", "train.epochs=3"]
    assert main(["train", str(out / "recipe.toml"), *argv, "-o", str(tmp_path / "run")]) == 0
    recipe = load_recipe(out / "recipe.toml", ["train.epochs=3"])
    data = load_dataset(recipe)
    assert np.array_equal(data.soft_train, soft[train_rows]) and np.array_equal(data.y_train, y[train_rows])
    hard = train(recipe, tmp_path / "hard", data=dataclasses.replace(data, soft_train=None), progress=lambda row: None)
    soft_run, hard_losses = _history_losses(tmp_path / "run"), _history_losses(hard)
    assert len(soft_run) == len(hard_losses) == 3
    assert all(abs(a - b) > 1e-4 for a, b in zip(soft_run, hard_losses)), (soft_run, hard_losses)   # the soft targets trained it
    # soft cross-entropy is bounded below by the targets' entropy (about 1 nat at T = 4 here); hard CE is not
    entropy = float(-(soft[train_rows] * np.log(soft[train_rows])).sum(1).mean())
    assert soft_run[-1] >= entropy - 1e-3 and entropy > 0.1


def _npz_recipe_file(tmp_path, **arrays) -> str:
    np.savez(tmp_path / "d.npz", **arrays)
    r = npz_recipe(load_recipe(DIGITS, TINY), "d.npz", int((arrays["split"] == "train").sum()))
    (tmp_path / "r.toml").write_text(r.replace(train=dataclasses.replace(r.train, epochs=1)).to_toml())
    return str(tmp_path / "r.toml")


def _arrays(n: int = 12):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    soft = np.full((n, 3), 0.1, np.float32)
    soft[np.arange(n), y] = 0.8
    return {"x": rng.normal(size=(n, 1, 8, 8)).astype(np.float32), "y": y, "soft": soft,
            "split": np.array(["train"] * (n - 3) + ["test"] * 3)}


def test_npz_soft_column_is_read_per_split(tmp_path):
    from toolkit.data import load_dataset

    a = _arrays()
    data = load_dataset(load_recipe(_npz_recipe_file(tmp_path, **a)))
    assert np.array_equal(data.soft_train, a["soft"][:9]) and np.array_equal(data.soft_test, a["soft"][9:])
    plain = {k: v for k, v in a.items() if k != "soft"}
    assert load_dataset(load_recipe(_npz_recipe_file(tmp_path, **plain))).soft_train is None


@pytest.mark.parametrize("bad, words", [
    (lambda s: s[:, :2], "'soft' has shape [12, 2], expected [12, 3]"),
    (lambda s: s[:5], "'soft' has shape [5, 3]"),
    (lambda s: (s * 10).astype(np.int64), "'soft' must hold floats"),
    (lambda s: s * 2, "summing to 1"),
    (lambda s: np.where(s > 0.5, np.nan, s), "summing to 1"),
    (lambda s: np.where(s > 0.5, 1.2, -0.1).astype(np.float32), "non-negative"),     # rows sum to 1, negatives
])
def test_bad_npz_soft_column_is_one_error(bad, words, tmp_path, capsys):
    a = _arrays()
    a["soft"] = bad(a["soft"])
    recipe = _npz_recipe_file(tmp_path, **a)
    assert main(["train", recipe, "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert words in err and "fix:" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_trained_nets_use_the_snapshots_and_smooth_moves_on_a_coarse_grid(digits):
    recipe, data = digits
    syn = distill(recipe, data, DistillDataConfig(per_class=1, iterations=4, nets="trained", seed=2))
    start, _ = real_init(data, 1, 2)
    assert syn.meta["nets"] == "trained" and syn.meta["snapshots"] == 2 and 0 < syn.meta["teacher_test_value"] <= 1
    assert syn.teacher is not None and syn.soft is None and not np.allclose(syn.x, start)
    smooth = distill(recipe, data, DistillDataConfig(per_class=1, iterations=4, smooth=8, seed=2))
    change = smooth.x - start                       # an 8x8 image on a grid 8 times coarser: one value per sample
    assert np.abs(change).max() > 1e-3
    assert np.allclose(change, change[:, :, :1, :1], atol=1e-6)


def test_new_options_are_checked():
    with pytest.raises(EdgetkError, match="nets"):
        DistillDataConfig(nets="pretrained").resolved()
    with pytest.raises(EdgetkError, match="smooth"):
        DistillDataConfig(smooth=0).resolved()
    with pytest.raises(EdgetkError, match="soft"):
        DistillDataConfig(soft=-1.0).resolved()
