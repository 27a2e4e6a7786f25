"""Splits: by group (no speaker on both sides, the default when groups exist), seeded fraction (which puts
speakers on both sides: recorded), given folders; the split recorded in RUN_DIR/split.json and re-derived
by load_run (and so by export), with an error naming the files that changed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_writers import fsdd_files, write_basicmotions_csv, write_fsdd_wavs
from toolkit.data import load_dataset
from toolkit.errors import EdgetkError
from toolkit.paths import repo_dir
from toolkit.recipe import load_recipe

GROUP = "data.group_pattern='^[0-9]_(?P<group>[a-z]+)_'"


def own(task: str, *data: str):
    return load_recipe(repo_dir("models") / f"{task}.toml", ["data.name=''", *data])


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGETK_CACHE", str(tmp_path_factory.getbasetemp() / "split-cache"))


@pytest.fixture(scope="module")
def fsdd_flat(shared, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FSDD digits 0-2 as class folders (links to the real recordings), no given split."""
    root = tmp_path_factory.mktemp("fsdd-flat")
    for p in fsdd_files(shared / "data" / "fsdd", digits=("0", "1", "2")):
        (root / p.name[0]).mkdir(exist_ok=True)
        (root / p.name[0] / p.name).symlink_to(p)
    return root


def test_group_split_never_puts_a_speaker_on_both_sides(fsdd_flat: Path) -> None:
    from toolkit.data.split import split_record

    for seed in (0, 1, 2):
        d = load_dataset(own("kws-digits", "data.format='audio-folder'", f"data.root='{fsdd_flat}'", GROUP,
                             f"data.split_seed={seed}"))
        train, test = set(d.groups_train.tolist()), set(d.groups_test.tolist())
        assert d.split["method"] == "group" and d.split["groups_on_both_sides"] == []     # auto: groups exist
        assert not train & test and train | test == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
        assert 0.1 < len(d.x_test) / (len(d.x_train) + len(d.x_test)) < 0.4 and set(d.y_test.tolist()) == {0, 1, 2}
    rnd = load_dataset(own("kws-digits", "data.format='audio-folder'", f"data.root='{fsdd_flat}'", GROUP,
                           "data.split='fraction'"))
    assert rnd.split["method"] == "fraction" and len(rnd.split["groups_on_both_sides"]) == 6   # every speaker leaks
    assert split_record(rnd)["groups_on_both_sides"] == rnd.split["groups_on_both_sides"]


def test_split_recorded_and_rederived_by_load_run(shared, tmp_path: Path, one_torch_thread) -> None:
    from toolkit.train import load_run, train

    write_fsdd_wavs(shared / "data" / "fsdd", tmp_path / "wav", rate=8000, subtype="PCM_16", stereo_every=0,
                    split_folders=False, digits=("0", "1"))
    r = own("kws-digits", "data.format='audio-folder'", f"data.root='{tmp_path / 'wav'}'", GROUP,
            "train.epochs=1", "model.width=0.25")
    run_dir = train(r, tmp_path / "run")
    rec = json.loads((run_dir / "split.json").read_text())
    assert rec["method"] == "group" and rec["seed"] == 0 and len(rec["hash"]) == 64 and rec["skipped"] == []
    assert rec["n_train"] + rec["n_test"] == 600 and len(rec["sha_test"]) == rec["n_test"]
    run = load_run(run_dir)
    assert run.data.ids_test.tolist() == rec["ids_test"] and run.data.ids_train.tolist() == rec["ids_train"]
    import soundfile as sf

    changed = tmp_path / "wav" / rec["ids_test"][3]
    pcm, sr = sf.read(str(changed), dtype="int16")
    sf.write(str(changed), (pcm // 2).astype(np.int16), sr, subtype="PCM_16")
    gone = tmp_path / "wav" / rec["ids_train"][0]
    gone.unlink()
    with pytest.raises(EdgetkError) as e:
        load_run(run_dir)
    msg = str(e.value)
    assert "the data of this run changed since it was trained" in msg and str(run_dir / "split.json") in msg
    assert f"{rec['ids_test'][3]} (changed)" in msg and f"{rec['ids_train'][0]} (gone)" in msg


def test_export_uses_the_recorded_test_set(tmp_path: Path, one_torch_thread) -> None:
    from toolkit.export import export_run
    from toolkit.train import train

    write_basicmotions_csv(tmp_path / "bm", parquet=0)
    r = load_recipe(repo_dir("models") / "imu-motions.toml",
                    ["data.name=''", "data.format='csv'", f"data.root='{tmp_path / 'bm'}'", "data.timestamp_column='t_ms'",
                     "data.split='fraction'", "data.test_fraction=0.3", "data.split_seed=3", "train.epochs=2"])
    run_dir = train(r, tmp_path / "run")
    rec = json.loads((run_dir / "split.json").read_text())
    assert rec["method"] == "fraction" and rec["n_test"] == 24
    bundle = export_run(run_dir, tmp_path / "bundle")
    y = np.load(bundle / "test_y.npy", allow_pickle=False)
    labels = sorted(["Badminton", "Running", "Standing", "Walking"])
    want = [labels.index(i.split("/")[1]) for i in rec["ids_test"]]     # test/<class>/recNN.csv -> class id
    assert y.tolist() == want
