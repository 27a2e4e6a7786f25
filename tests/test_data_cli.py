"""`edgetk data RECIPE`: per class and split counts, durations, rates, groups and every problem; --json; exit 2
on errors; data.on_error = "skip" lists the skipped file there and in the run's split.json."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_writers import write_basicmotions_csv, write_fsdd_wavs
from toolkit.paths import repo_dir

EDGETK = [sys.executable, "-m", "toolkit"]


def edgetk(*args: str, cache: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "EDGETK_CACHE": str(cache)}
    return subprocess.run([*EDGETK, *args], capture_output=True, text=True, env=env, timeout=300)


def recipe(folder: Path, data: str) -> Path:
    """A recipe file beside the data (relative root), with a tiny model and schedule."""
    text = (repo_dir("models") / "imu-motions.toml").read_text()
    text = text.replace('name = "basicmotions"   # toolkit/data/basicmotions.py; 40 train / 40 test recordings\n', data)
    text = text.replace('root = ""               # "" = the files inside the installed sktime package\n', "")
    path = folder / "recipe.toml"
    path.write_text(text)
    return path


@pytest.fixture
def broken_csv(tmp_path: Path) -> Path:
    """BasicMotions as CSV recordings, one with a non-numeric cell."""
    write_basicmotions_csv(tmp_path / "bm", parquet=0)
    bad = sorted((tmp_path / "bm" / "train" / "Walking").glob("*.csv"))[0]
    lines = bad.read_text().splitlines()
    cells = lines[2].split(",")
    lines[2] = ",".join([*cells[:2], "x", *cells[3:]])          # row 2 (line 3), column acc_y
    bad.write_text("\n".join(lines) + "\n")
    return bad


def test_data_lists_counts_and_the_broken_file(broken_csv: Path, tmp_path: Path) -> None:
    r = recipe(tmp_path, 'format = "csv"\nroot = "bm"\ntimestamp_column = "t_ms"\n')
    proc = edgetk("data", str(r), cache=tmp_path / "cache")
    assert proc.returncode == 2, proc.stderr
    out = proc.stdout
    assert f"data     csv  {tmp_path / 'bm'}" in out and "split    folders: 39 train / 40 test, sample shape [100, 6]" in out
    rows = {tuple(ln.split()[:3]) for ln in out.splitlines()}
    assert ("Walking", "train", "9") in rows and ("Walking", "test", "10") in rows and ("Running", "train", "10") in rows
    assert "problems 1: 1 error(s)" in out
    assert f"{broken_csv}, row 2: non-numeric value 'x' in column 'acc_y' (line 3)" in out
    js = edgetk("data", str(r), "--json", cache=tmp_path / "cache")
    report = json.loads(js.stdout)
    assert js.returncode == 2 and report["errors"] == 1 and report["problems"][0]["file"] == str(broken_csv)
    walking = [c for c in report["classes"] if c["class"] == "Walking"]
    assert [(c["split"], c["samples"], c["seconds"], c["rate_hz"]) for c in walking] == [
        ("train", 9, [10.0, 10.0, 10.0], [10.0]), ("test", 10, [10.0, 10.0, 10.0], [10.0])]
    skip = edgetk("data", str(r), "--set", "data.on_error=skip", cache=tmp_path / "cache")
    assert skip.returncode == 0 and "problems 1: 0 error(s), 1 skipped (data.on_error = skip)" in skip.stdout


def test_training_with_skip_lists_the_skipped_file_in_the_run(broken_csv: Path, tmp_path: Path) -> None:
    r = recipe(tmp_path, 'format = "csv"\nroot = "bm"\ntimestamp_column = "t_ms"\non_error = "skip"\n')
    proc = edgetk("train", str(r), "-o", str(tmp_path / "run"), "--set", "train.epochs=1", "--json", cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert f"skipped {broken_csv}, row 2: non-numeric value" in proc.stderr
    rec = json.loads((tmp_path / "run" / "split.json").read_text())
    assert [s["file"] for s in rec["skipped"]] == [str(broken_csv)] and rec["n_train"] == 39


def test_data_shows_groups_per_split_and_speakers_on_both_sides(shared, tmp_path: Path) -> None:
    write_fsdd_wavs(shared / "data" / "fsdd", tmp_path / "wav", rate=8000, subtype="PCM_16", stereo_every=3,
                    split_folders=False, digits=("5",))
    r = recipe(tmp_path, 'format = "audio-folder"\nroot = "wav"\ngroup_pattern = \'^[0-9]_(?P<group>[a-z]+)_\'\n')
    proc = edgetk("data", str(r), cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert "split    group (seed 0, test_fraction 0.2)" in proc.stdout and "on both sides: none" in proc.stdout
    row = next(ln.split() for ln in proc.stdout.splitlines() if ln.startswith("5 ") and " train " in ln)
    assert row[1] == "train" and row[6] == "8000" and row[7] == "1,2"      # rates and channel counts read from the files
    leak = edgetk("data", str(r), "--set", "data.split=fraction", "--json", cache=tmp_path / "cache")
    report = json.loads(leak.stdout)
    assert report["split"]["method"] == "fraction" and len(report["split"]["groups_on_both_sides"]) == 6
    assert "on both sides: george, jackson" in edgetk("data", str(r), "--set", "data.split=fraction", cache=tmp_path / "cache").stdout
