"""Build hook: the wheel carries the data folders the CLI reads (targets/, models/, firmware_stubs/).

They stay top-level folders of the repository (users edit them there); at build time they are copied
under toolkit/_data/, where toolkit.paths.repo_dir finds them in an installed wheel. An editable install
reads the checkout's folders directly, so nothing is copied for it. Everything else is in pyproject.toml.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_FOLDERS = ("targets", "models", "firmware_stubs")  # = toolkit.paths.DATA_FOLDERS
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", "*.elf", "*.bin", "*.so", ".*")


class BuildPyWithData(build_py):
    """build_py, then copy the data folders into the built package (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in DATA_FOLDERS:
            dest = Path(self.build_lib) / "toolkit" / "_data" / name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(ROOT / name, dest, ignore=IGNORE)


setup(cmdclass={"build_py": BuildPyWithData})
