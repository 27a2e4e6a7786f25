"""distill-data with [train] augment (the siamese family in the synthesis, carried by the written recipe) and the
SRe2L "recover" method, on image-digits (real data, tiny configs)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from toolkit.cli import main
from toolkit.paths import REPO_ROOT
from toolkit.recipe import load_recipe
from toolkit.train.distill_data import DistillDataConfig, distill, real_init

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DIGITS = REPO_ROOT / "models" / "image-digits.toml"
AUG = '["shift", "noise", "mask", "gain"]'


def test_written_recipe_carries_the_augmentation_the_synthesis_used(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["distill-data", str(DIGITS), "--per-class", "1", "--iterations", "5", "--set", "model.width=0.25",
                 "--set", f"train.augment={AUG}", "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["augment_family"] == doc["train_augment"] == ["shift", "noise", "mask", "gain"]
    r = load_recipe(out / "recipe.toml")
    assert r.data.format == "npz" and r.train.augment == ("shift", "noise", "mask", "gain")


def test_synthesis_family_changes_the_samples_and_is_deterministic():
    from toolkit.data import load_dataset

    plain = load_recipe(DIGITS, ["model.width=0.25"])
    aug = load_recipe(DIGITS, ["model.width=0.25", f"train.augment={AUG}"])
    data = load_dataset(plain)
    cfg = DistillDataConfig(per_class=1, iterations=6, seed=2)
    a, b, c = distill(aug, data, cfg), distill(aug, data, cfg), distill(plain, data, cfg)
    assert np.array_equal(a.x, b.x) and not np.allclose(a.x, c.x)
    assert c.meta["augment_family"] == ["shift"] and a.meta["augment_family"] == ["shift", "noise", "mask", "gain"]


def test_recover_moves_samples_toward_the_teachers_batchnorm_statistics():
    from toolkit.data import load_dataset

    recipe = load_recipe(DIGITS, ["model.width=0.25", "train.epochs=2", f"train.augment={AUG}"])
    data = load_dataset(recipe)
    syn = distill(recipe, data, DistillDataConfig(per_class=1, method="recover", iterations=30, seed=1, soft=1.0))
    start, y = real_init(data, 1, 1)
    assert syn.meta["method"] == "recover" and syn.teacher is not None and syn.meta["teacher_test_value"] > 0.3
    assert np.array_equal(syn.y, y) and np.isfinite(syn.x).all() and not np.allclose(syn.x, start)
    assert syn.meta["loss_last"] < syn.meta["loss_first"]
    assert syn.soft.shape == (10, 10) and np.allclose(syn.soft.sum(1), 1, atol=1e-5)


def test_centroid_init_is_the_class_mean_at_one_per_class_and_kmeans_above(tmp_path, capsys):
    from toolkit.data import load_dataset
    from toolkit.train.distill_data import centroid_init

    data = load_dataset(load_recipe(DIGITS))
    x1, y1 = centroid_init(data, 1, 0)
    for c in range(10):
        assert np.allclose(x1[c], data.x_train[data.y_train == c].mean(0), atol=1e-5) and y1[c] == c
    x3, y3 = centroid_init(data, 3, 0)
    assert x3.shape == (30, 1, 8, 8) and np.array_equal(x3, centroid_init(data, 3, 0)[0])
    for c in range(10):   # k-means: each training sample is nearer its own centroid, the centroids are distinct
        own = data.x_train[data.y_train == c].reshape(-1, 64)
        cen = x3[y3 == c].reshape(3, 64)
        assert len({tuple(v) for v in cen.round(4)}) == 3
        spread = ((own[:, None] - cen[None]) ** 2).sum(-1).min(1).mean()
        assert spread < ((own - own.mean(0)) ** 2).sum(1).mean()
    assert main(["distill-data", str(DIGITS), "--init", "centroid", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'centroids'" in err and "fix:" in err


def test_kmeans_method_is_the_centroids_unoptimised():
    from toolkit.data import load_dataset
    from toolkit.train.distill_data import centroid_init

    recipe = load_recipe(DIGITS, ["model.width=0.25"])
    data = load_dataset(recipe)
    syn = distill(recipe, data, DistillDataConfig(per_class=2, method="kmeans", seed=4))
    x, y = centroid_init(data, 2, 4)
    assert np.array_equal(syn.x, x) and np.array_equal(syn.y, y) and syn.meta["iterations"] == 0
    assert syn.meta["init"] == "k-means centroids of each class"
