"""Broken user data: one EdgetkError naming the file (and row) and the problem, or with data.on_error = "skip"
the file skipped and listed; recipe combinations that cannot work are refused on load."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from data_writers import basicmotions, write_basicmotions_csv, write_recording
from toolkit.data import load_dataset
from toolkit.errors import EdgetkError
from toolkit.paths import repo_dir
from toolkit.recipe import load_recipe, recipe_from_dict

CSV = ["data.format='csv'", "data.timestamp_column='t_ms'"]


def own(task: str, *data: str):
    return load_recipe(repo_dir("models") / f"{task}.toml", ["data.name=''", *data])


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGETK_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def bm(tmp_path: Path) -> Path:
    """BasicMotions as CSV recordings under train/ and test/."""
    write_basicmotions_csv(tmp_path / "bm", parquet=0)
    return tmp_path / "bm"


def rec() -> np.ndarray:
    return basicmotions()["train"][0][0]


def error(recipe) -> str:
    with pytest.raises(EdgetkError) as e:
        load_dataset(recipe)
    assert "\n  fix: " in str(e.value)            # every error names the fix
    return str(e.value)


def test_gap_in_timestamps_names_file_and_row(bm: Path) -> None:
    t = np.arange(100) * 100.0
    t[40:] += 300                                 # 3 samples missing after row 40
    path = write_recording(bm / "train" / "Walking" / "gap.csv", rec(), t=t)
    msg = error(own("imu-motions", *CSV, f"data.root='{bm}'"))
    assert f"{path}, row 41: gap in the timestamps: 400 ms between rows 40 and 41, 100 ms expected" in msg


def test_mixed_rates_across_and_within_files(bm: Path, tmp_path: Path) -> None:
    fast = write_recording(bm / "train" / "Walking" / "zz_fast.csv", rec(), step_ms=50.0)
    msg = error(own("imu-motions", *CSV, f"data.root='{bm}'"))
    assert f"{fast}, row 2: mixed rates: this file runs at 20 Hz, 10 Hz expected" in msg
    fast.unlink()
    t = np.concatenate([np.arange(60) * 100.0, 5900 + np.arange(1, 41) * 50.0])   # 10 Hz, then 20 Hz
    changed = write_recording(bm / "train" / "Walking" / "zz_change.csv", rec(), t=t)
    msg = error(own("imu-motions", *CSV, f"data.root='{bm}'", "data.rate_hz=10.0"))
    assert f"{changed}, row 61: the rate changes at row 61: step 50 ms, 100 ms expected (mixed rates)" in msg


def test_missing_column_and_non_numeric_cell(bm: Path) -> None:
    path = sorted((bm / "test" / "Running").glob("*.csv"))[0]
    msg = error(own("imu-motions", *CSV, f"data.root='{bm}'", "data.columns=['acc_x', 'mag_x']"))
    assert "missing column(s) ['mag_x']" in msg and "BasicMotions" not in msg and ".csv" in msg
    lines = path.read_text().splitlines()
    cells = lines[7].split(",")
    cells[3] = "n/a"
    lines[7] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    msg = error(own("imu-motions", *CSV, f"data.root='{bm}'"))
    assert f"{path}, row 7: non-numeric value 'n/a' in column 'acc_z' (line 8)" in msg
    cells[3] = ""
    lines[7] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    assert f"{path}, row 7: empty cell in column 'acc_z' (line 8)" in error(own("imu-motions", *CSV, f"data.root='{bm}'"))


def test_non_numeric_parquet_cell(bm: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = [repr(float(v)) for v in rec()[0]]
    values[12] = "oops"
    cols = {"t_ms": np.arange(100) * 100, "acc_x": values, **{c: rec()[j] for j, c in enumerate(
        ["acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"], start=1)}}
    path = bm / "train" / "Standing" / "text.parquet"
    pq.write_table(pa.table(cols), str(path))
    assert f"{path}, row 13: non-numeric value 'oops' in column 'acc_x'" in error(own("imu-motions", *CSV, f"data.root='{bm}'"))


def test_unreadable_wav_and_on_error_skip(shared, tmp_path: Path) -> None:
    from data_writers import write_fsdd_wavs

    write_fsdd_wavs(shared / "data" / "fsdd", tmp_path / "wav", rate=8000, subtype="PCM_16", stereo_every=0,
                    split_folders=False, speakers=("george", "jackson"), digits=("4", "5"))
    bad = tmp_path / "wav" / "4" / "4_george_99.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    audio = ["data.format='audio-folder'", f"data.root='{tmp_path / 'wav'}'", "data.split='fraction'"]
    msg = error(own("kws-digits", *audio))
    assert f"{bad}: not a readable audio file" in msg and 'data.on_error = "skip"' in msg
    d = load_dataset(own("kws-digits", *audio, "data.on_error='skip'"))
    assert [p["file"] for p in d.problems] == [str(bad)] and "not a readable audio file" in d.problems[0]["problem"]
    assert len(d.x_train) + len(d.x_test) == 200                       # 2 speakers x 2 digits x 50, the bad one out
    assert "4/4_george_99.wav" not in {*d.ids_train, *d.ids_test}


def test_empty_class_folder(bm: Path) -> None:
    (bm / "train" / "Jumping").mkdir()
    (bm / "test" / "Jumping").mkdir()
    msg = error(own("imu-motions", *CSV, f"data.root='{bm}'"))
    assert f"{bm / 'train' / 'Jumping'}: empty class folder" in msg
    msg_skip = error(own("imu-motions", *CSV, f"data.root='{bm}'", "data.on_error='skip'"))   # not a broken file: no skip
    assert "empty class folder" in msg_skip


def test_manifest_unknown_label_and_groups(bm: Path, tmp_path: Path) -> None:
    files = sorted(p.relative_to(bm).as_posix() for p in bm.rglob("*.csv"))
    rows = ["file,label,group"] + [f"{f},{f.split('/')[1]},{'s' + str(i % 5)}" for i, f in enumerate(files)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    d = load_dataset(own("imu-motions", *CSV, f"data.root='{bm}'", f"data.manifest='{tmp_path / 'm.csv'}'",
                         "data.split='group'", "data.test_fraction=0.2"))
    assert not set(d.groups_train.tolist()) & set(d.groups_test.tolist()) and len(d.x_train) + len(d.x_test) == 80
    rows[5] = rows[5].replace(",Running,", ",Runing,").replace(",Badminton,", ",Badmintn,")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    msg = error(own("imu-motions", *CSV, f"data.root='{bm}'", f"data.manifest='{tmp_path / 'm.csv'}'"))
    assert f"{tmp_path / 'm.csv'}, row 6: unknown label" in msg and "classes: Badminton, Running, Standing, Walking" in msg


def test_given_split_needs_both_folders_and_group_split_needs_groups(bm: Path) -> None:
    shutil.rmtree(bm / "test")
    (bm / "test").mkdir()
    (bm / "test" / "Walking").mkdir()
    assert "empty class folder" in error(own("imu-motions", *CSV, f"data.root='{bm}'"))
    shutil.rmtree(bm / "test")
    assert "data.split = 'group' but the samples have no groups" in error(
        own("imu-motions", *CSV, f"data.root='{bm / 'train'}'", "data.split='group'"))
    assert "data.split = 'folders' but the data gives no split" in error(
        own("imu-motions", *CSV, f"data.root='{bm / 'train'}'", "data.split='folders'"))


def test_recipe_combinations_refused_on_load(tmp_path: Path) -> None:
    from toolkit.data import FORMATS
    from toolkit.recipe import DATA_FORMATS

    assert set(FORMATS) == set(DATA_FORMATS)      # the recipe's choices are the registry's names
    base = {"task": "t", "model": {"arch": "cnn1d"}}
    cases = [
        ({"name": "fsdd", "format": "csv", "root": "x"}, "exactly one of name, format or loader"),
        ({}, "exactly one of name, format or loader"),
        ({"format": "csv", "root": "x", "window": 50}, "data.window = 50 samples without a rate"),
        ({"format": "audio-folder", "root": "x", "image_size": [8, 8]}, "data.image_size applies to format 'image-folder'"),
        ({"format": "image-folder", "root": "x", "window": 8}, "data.window applies to format 'csv'"),
        ({"format": "wav", "root": "x"}, "unknown data.format='wav'"),
        ({"format": "npz"}, "needs data.root"),
        ({"format": "csv", "root": "x", "rate_hz": 10.0, "stride": 5}, "data.stride = 5 without data.window"),
        ({"format": "audio-folder", "root": "x", "group_pattern": "^([^_]+)_"}, "no named group `group`"),
        ({"format": "audio-folder", "root": "x", "split": "random"}, "unknown data.split='random'"),
        ({"format": "audio-folder", "root": "x", "test_fraction": 1.5}, "not between 0 and 1"),
    ]
    for data, message in cases:
        with pytest.raises(EdgetkError) as e:
            recipe_from_dict({**base, "data": data}, source="r.toml")
        assert message in str(e.value) and "r.toml" in str(e.value), (data, str(e.value))


def test_frontend_rate_conflict_and_missing_folders(tmp_path: Path) -> None:
    assert "data folder not found" in error(own("kws-digits", "data.format='audio-folder'", f"data.root='{tmp_path / 'no'}'"))
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.wav").write_bytes(b"")
    assert "no class folders in" in error(own("kws-digits", "data.format='audio-folder'", f"data.root='{tmp_path / 'flat'}'"))
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    assert "not a readable .npz" in error(own("kws-digits", "data.format='npz'", f"data.root='{tmp_path / 'x.npz'}'"))
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    assert "not a readable .npz of plain arrays" in error(own("kws-digits", "data.format='npz'", f"data.root='{tmp_path / 'obj.npz'}'"))
    with pytest.raises(EdgetkError, match="no function 'nope'"):
        load_dataset(own("kws-digits", "data.loader='toolkit.data:nope'"))
    with pytest.raises(EdgetkError, match="no entry point of that name"):
        load_dataset(own("kws-digits", "data.loader='no-such-dataset'"))


def test_frontend_must_fit_the_data(bm: Path, shared) -> None:
    msg = error(own("imu-motions", *CSV, f"data.root='{bm}'", "frontend.type='mfcc'"))
    assert "[frontend] type = 'mfcc' does not fit series data" in msg and "imu" in msg
    msg = error(load_recipe(repo_dir("models") / "kws-digits.toml", ["frontend.type='mfcc'", "data.sample_rate=16000"]))
    assert "data.sample_rate = 16000 differs from frontend.sample_rate = 8000" in msg
