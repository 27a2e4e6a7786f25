"""The wheel as a user gets it: built from a copy of the sources, installed (not editable) into a fresh
virtualenv that reuses .venv's packages, its package folder made read-only, and run from an empty folder:
doctor, targets (shipped and the user's own), profile on the host simulator and QEMU, demo's recipes.
Builds must land in the cache ($EDGETK_CACHE), never in the installed package."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import require_tool
from toolkit.paths import REPO_ROOT

SOURCES = ("toolkit", "targets", "models", "firmware_stubs", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
MODEL = REPO_ROOT / "tests" / "data" / "lstm_fsdd_int8.tflite"
CARRIED = ("targets/qemu-m4.toml", "models/imu-motions.toml", "firmware_stubs/qemu-plugin/insn_count.c",
           "firmware_stubs/runtime/dut.c", "firmware_stubs/ports/qemu-mps2/an386.ld")


def _files(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


def _chmod_tree(root: Path, writable: bool) -> None:
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


class Installed:
    """The wheel installed into a virtualenv, and how to run its `edgetk` from an empty folder."""

    def __init__(self, root: Path) -> None:
        self.root, self.wheel = root, self._build(root)
        self.venv = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(self.venv)], check=True, timeout=120)
        self.python = self.venv / "bin" / "python"
        self.site = Path(subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        capture_output=True, text=True, check=True).stdout.strip())
        # .venv's packages come after the wheel's own site-packages (a plain path: .venv's .pth files, such as
        # the editable edgetk's, are not read)
        (self.site / "zz_edgetk_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        subprocess.run([sys.executable, "-m", "pip", "--python", str(self.python), "install", "-q", "--no-deps",
                        "--no-index", str(self.wheel)], check=True, timeout=300)
        self.package = self.site / "toolkit"
        self.empty = root / "empty"
        self.empty.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "EDGETK_", "VIRTUAL_ENV"))}
        self.env.update(PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONDONTWRITEBYTECODE="1",
                        EDGETK_CACHE=str(root / "cache"), EDGETK_HISTORY=str(root / "history.sqlite"))

    @staticmethod
    def _build(root: Path) -> Path:
        src = root / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "_data")
        for name in SOURCES:
            (shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy2)(REPO_ROOT / name, src / name,
                                                                             **({"ignore": ignore} if (REPO_ROOT / name).is_dir() else {}))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(root / "dist"), str(src)], check=True, timeout=300, capture_output=True)
        return next((root / "dist").glob("edgetk-*.whl"))

    def edgetk(self, *argv: str, code: int = 0, cwd: Path | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.venv / "bin" / "edgetk"), *argv], capture_output=True, text=True,
                              cwd=cwd or self.empty, env=self.env, timeout=300)
        assert proc.returncode == code, f"edgetk {' '.join(argv)}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Installed:
    inst = Installed(tmp_path_factory.mktemp("wheel"))
    _chmod_tree(inst.package, writable=False)  # a read-only install, like a system site-packages
    yield inst
    _chmod_tree(inst.package, writable=True)


def test_wheel_carries_the_data_folders(wheel: Installed):
    names = set(zipfile.ZipFile(wheel.wheel).namelist())
    missing = [f for f in CARRIED if f"toolkit/_data/{f}" not in names]
    assert not missing, missing
    assert not any("__pycache__" in n or n.startswith(("targets/", "models/")) for n in names)


def test_runs_from_the_install_not_the_checkout(wheel: Installed):
    proc = subprocess.run([str(wheel.python), "-c", "import toolkit; print(toolkit.__file__)"], capture_output=True,
                          text=True, cwd=wheel.empty, env=wheel.env, check=True)
    assert Path(proc.stdout.strip()).parent == wheel.package
    doctor = json.loads(wheel.edgetk("doctor", "--json").stdout)
    assert doctor["edgetk"]["package"] == str(wheel.package)
    assert doctor["edgetk"]["data"] == str(wheel.package / "_data")
    assert doctor["edgetk"]["cache"] == wheel.env["EDGETK_CACHE"]
    assert doctor["targets"]["qemu-m4"] and doctor["packages"]["torch"]


def test_targets_shipped_and_the_users_own(wheel: Installed, tmp_path: Path):
    shipped = json.loads(wheel.edgetk("targets", "--json").stdout)
    assert shipped["qemu-m4"]["origin"] == "shipped"
    assert Path(shipped["qemu-m4"]["file"]).is_relative_to(wheel.package)
    project, mine = tmp_path / "project", tmp_path / "mine"
    (project / "targets").mkdir(parents=True)
    mine.mkdir()
    sim = (wheel.package / "_data" / "targets" / "host-sim.toml").read_text()
    (project / "targets" / "host-sim.toml").write_text(sim)
    (mine / "my-sim.toml").write_text(sim.replace('name = "host-sim"', 'name = "my-sim"'))
    proc = wheel.edgetk("--targets", str(mine), "targets", "--json", cwd=project)
    listed = json.loads(proc.stdout)
    assert listed["host-sim"]["origin"] == "./targets" and "overrides" in proc.stderr
    assert listed["my-sim"]["origin"] == "--targets" and listed["qemu-m4"]["origin"] == "shipped"
    text = wheel.edgetk("targets", cwd=project).stdout
    assert "./targets (" in text and "shipped" in text
    (mine / "bad.toml").write_text(sim.replace('name = "host-sim"', 'name = "bad"').replace("kind = ", "knd = "))
    bad = wheel.edgetk("targets", "--targets", str(mine), code=2, cwd=project)
    assert "bad.toml" in bad.stderr and "knd" in bad.stderr


@pytest.mark.parametrize("target, tools", [("host-sim", ("gcc",)), ("qemu-m4", ("arm-none-eabi-gcc", "qemu-system-arm"))])
def test_profile_builds_in_the_cache(wheel: Installed, target: str, tools: tuple[str, ...]):
    for tool in tools:
        require_tool(tool)
    before = _files(wheel.venv)
    proc = wheel.edgetk("profile", str(MODEL), "--target", target, "--samples", "3", "-o", f"out-{target}", "--json")
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "pass" and doc["report"]["ran_on"] == target
    assert (wheel.empty / f"out-{target}" / "report.html").is_file()
    assert list((Path(wheel.env["EDGETK_CACHE"]) / "build" / target).iterdir())  # built in the cache
    assert _files(wheel.venv) == before  # nothing new or changed under the install


def test_user_target_profiles(wheel: Installed, tmp_path: Path):
    require_tool("gcc")
    sim = (wheel.package / "_data" / "targets" / "host-sim.toml").read_text()
    (tmp_path / "my-sim.toml").write_text(sim.replace('name = "host-sim"', 'name = "my-sim"'))
    proc = wheel.edgetk("profile", str(MODEL), "--target", "my-sim", "--targets", str(tmp_path), "--samples", "2",
                        "-o", "out-my-sim", "--json")
    assert json.loads(proc.stdout)["report"]["ran_on"] == "my-sim"


def test_demo_finds_its_recipes(wheel: Installed):
    err = json.loads(wheel.edgetk("demo", "--task", "no-such-task", "--json", code=2).stdout)
    assert "imu-motions" in err["fix"] and "kws-digits" in err["fix"]
    # the shipped recipe is found and read from the install (epochs=0 is refused by its validation, not by a lookup)
    err = json.loads(wheel.edgetk("demo", "--set", "train.epochs=0", "--json", code=2).stdout)
    assert err["error"].startswith(str(wheel.package / "_data" / "models" / "imu-motions.toml")), err
