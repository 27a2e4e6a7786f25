"""The example recipes (models/examples/) as a user runs them: data laid out as each one's comment says, only
data.root pointed at it; `edgetk data` finds no problem, the dataset loads and the model takes its input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_writers import basicmotions, fsdd_files, write_basicmotions_npz, write_digits_png, write_recording
from toolkit.paths import repo_dir

EXAMPLES = repo_dir("models") / "examples"


def words(shared: Path, root: Path) -> Path:
    """FSDD digits 0-2 as my_words/<digit>/<speaker>_<digit>_<index>.wav (links to the recordings)."""
    for p in fsdd_files(shared / "data" / "fsdd", digits=("0", "1", "2")):
        digit, speaker, index = p.stem.split("_")
        (root / digit).mkdir(parents=True, exist_ok=True)
        (root / digit / f"{speaker}_{digit}_{index}.wav").symlink_to(p)
    return root


def imu_logs(root: Path) -> Path:
    """BasicMotions recordings as imu_logs/<activity>/<i>.csv at 50 Hz with the example's column names."""
    for split, (x, labels) in basicmotions().items():
        for i, (rec, label) in enumerate(zip(x, labels)):
            write_recording(root / label.lower() / f"{split}{i}.csv", rec, step_ms=20.0,
                            columns=["ax", "ay", "az", "gx", "gy", "gz"])
    return root


def sessions(root: Path) -> Path:
    """One Parquet session per person: a recording of every activity one after another, labelled per row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, labels = basicmotions()["train"]
    root.mkdir(parents=True)
    by_class = {c: [i for i, lab in enumerate(labels) if lab == c] for c in sorted(set(labels))}
    for k, person in enumerate(("alice", "bob", "carol", "dave", "erin")):
        picks = [by_class[c][k] for c in by_class]
        rec = np.concatenate([x[i][:3] for i in picks], axis=1)
        act = [labels[i] for i in picks for _ in range(x.shape[2])]
        pq.write_table(pa.table({"acc_x": rec[0], "acc_y": rec[1], "acc_z": rec[2], "activity": act}), str(root / f"{person}.parquet"))
    return root


CASES = {   # example -> (writer of its data, expected input shape)
    "words-audio.toml": (lambda shared, t: words(shared, t / "my_words"), (1, 49, 10)),
    "imu-csv.toml": (lambda shared, t: imu_logs(t / "imu_logs"), (6, 1, 100)),
    "imu-parquet.toml": (lambda shared, t: sessions(t / "sessions"), (3, 1, 50)),
    "images.toml": (lambda shared, t: (write_digits_png(t / "photos"), t / "photos")[1], (1, 32, 32)),
    "arrays-npz.toml": (lambda shared, t: write_basicmotions_npz(t / "features.npz"), (6, 1, 100)),
    "hook.toml": (None, (6, 1, 100)),
}


@pytest.mark.parametrize("example", list(CASES))
def test_example_recipe_loads_its_data(example: str, shared, tmp_path: Path, monkeypatch) -> None:
    import torch

    from toolkit.data import load_dataset
    from toolkit.data.report import data_report
    from toolkit.nn import build_model
    from toolkit.recipe import load_recipe

    monkeypatch.setenv("EDGETK_CACHE", str(tmp_path / "cache"))
    write, shape = CASES[example]
    overrides = [f"data.root='{write(shared, tmp_path)}'"] if write else []
    recipe = load_recipe(EXAMPLES / example, overrides)
    report = data_report(recipe.data, recipe.extra.get("frontend"), recipe.path)
    assert report["errors"] == 0 and report["problems"] == [], report["problems"]
    data = load_dataset(recipe)
    assert data.input_shape == shape and len(data.x_train) and len(data.x_test)
    if data.groups_train is not None and data.split["method"] == "group":
        assert data.split["groups_on_both_sides"] == []
    out = build_model(recipe, data).eval()(torch.from_numpy(data.x_test[:2]))
    assert out.shape == (2, data.n_classes)
