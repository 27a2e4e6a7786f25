"""Recipe validation: unknown keys with a suggestion, wrong types, overrides, resolved TOML round trip."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from toolkit.errors import EdgetkError
from toolkit.paths import REPO_ROOT, repo_dir
from toolkit.recipe import DataConfig, Recipe, load_recipe, recipe_from_dict

TASKS = ["kws-digits", "imu-motions", "ecg-anomaly", "image-digits"]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.toml"
    p.write_text(text)
    return p


BASE = 'task = "t"\n[data]\nname = "digits"\n[model]\narch = "resnet"\n'


@pytest.mark.parametrize("task", TASKS)
def test_shipped_recipes_load(task: str) -> None:
    r = load_recipe(repo_dir("models") / f"{task}.toml")
    assert isinstance(r, Recipe) and r.task == task
    assert isinstance(r.data, DataConfig) and r.train.epochs > 0


def test_unknown_key_names_file_field_and_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + "[train]\nlearning_rat = 0.1\nepochs = 3\n")
    with pytest.raises(EdgetkError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert str(p) in msg and "train.learning_rat" in msg
    p = write(tmp_path, BASE + "[train]\nepoch = 3\n")
    with pytest.raises(EdgetkError, match=r"did you mean 'train.epochs'"):
        load_recipe(p)


def test_unknown_section_suggests(tmp_path: Path) -> None:
    with pytest.raises(EdgetkError, match="did you mean 'train'"):
        load_recipe(write(tmp_path, BASE + "[trian]\nepochs = 3\n"))


def test_wrong_type_names_field_and_type(tmp_path: Path) -> None:
    with pytest.raises(EdgetkError) as e:
        load_recipe(write(tmp_path, BASE + '[train]\nepochs = "ten"\n'))
    assert "train.epochs" in str(e.value) and "must be int" in str(e.value)
    with pytest.raises(EdgetkError, match="model.width' must be float"):
        load_recipe(write(tmp_path, BASE.replace('arch = "resnet"', 'arch = "resnet"\nwidth = "wide"')))
    with pytest.raises(EdgetkError, match="must be int"):
        load_recipe(write(tmp_path, BASE + "[train]\nepochs = true\n"))


def test_choice_checked_on_load(tmp_path: Path) -> None:
    with pytest.raises(EdgetkError, match="did you mean 'adamw'"):
        load_recipe(write(tmp_path, BASE + '[train]\noptimizer = "adam"\n'))
    with pytest.raises(EdgetkError, match=r"fleet.dtype='float16'(.|\n)*float32, float64"):
        load_recipe(write(tmp_path, BASE + '[fleet]\ndtype = "float16"\n'))
    assert load_recipe(write(tmp_path, BASE + '[fleet]\ndtype = "float64"\n')).fleet.dtype == "float64"


def test_minimum_checked_on_load(tmp_path: Path) -> None:
    with pytest.raises(EdgetkError, match=r"fleet.workers=-1 is below its minimum 0(.|\n)*fix: set fleet.workers"):
        load_recipe(write(tmp_path, BASE + "[fleet]\nworkers = -1\n"))
    with pytest.raises(EdgetkError, match="fleet.workers' must be int"):
        load_recipe(write(tmp_path, BASE + '[fleet]\nworkers = "all"\n'))
    assert load_recipe(write(tmp_path, BASE + "[fleet]\nworkers = 0\n")).fleet.workers == 0


def test_missing_required_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(EdgetkError, match="missing required field 'model.arch'"):
        load_recipe(write(tmp_path, 'task = "t"\n[data]\nname = "digits"\n'))
    with pytest.raises(EdgetkError, match="not valid TOML"):
        load_recipe(write(tmp_path, "task = \n"))
    with pytest.raises(EdgetkError, match="recipe not found"):
        load_recipe(tmp_path / "absent.toml")


def test_overrides_apply_and_validate(tmp_path: Path) -> None:
    r = load_recipe(repo_dir("models") / "imu-motions.toml", ["train.epochs=3", "model.width=0.5", "model.arch=resnet"])
    assert (r.train.epochs, r.model.width, r.model.arch) == (3, 0.5, "resnet")
    assert isinstance(r.model.width, float)
    with pytest.raises(EdgetkError, match="did you mean 'train.epochs'"):
        load_recipe(repo_dir("models") / "imu-motions.toml", ["train.epoch=3"])
    with pytest.raises(EdgetkError, match="KEY=VALUE"):
        load_recipe(repo_dir("models") / "imu-motions.toml", ["train.epochs"])


def test_resolved_toml_round_trip() -> None:
    r = load_recipe(repo_dir("models") / "ecg-anomaly.toml", ["train.seed=7"])
    again = recipe_from_dict(tomllib.loads(r.to_toml()))
    assert again.to_dict() == r.to_dict()
    assert "batch_size" in r.to_toml()  # defaults filled in


def test_cli_bad_recipe_is_one_line_error(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + "[train]\nepochz = 3\n")
    proc = subprocess.run([sys.executable, "-m", "toolkit", "train", str(p)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "did you mean 'train.epochs'" in proc.stderr and "Traceback" not in proc.stderr
