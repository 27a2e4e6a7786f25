"""Where edgetk's data folders are (targets/, models/, firmware_stubs/), where it caches builds, and ../shared.

Data folders: in a git checkout (or an editable install) the repository's own top-level folders; in an
installed wheel the copies under toolkit/_data/ that the build hook (setup.py) put there. Build outputs
never go into either: they go to cache_dir() ($EDGETK_CACHE, else $XDG_CACHE_HOME/edgetk, else
~/.cache/edgetk).
"""
from __future__ import annotations

import os
from pathlib import Path

from toolkit.errors import EdgetkError

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = Path(__file__).resolve().parent / "_data"
#: the folders the wheel carries as package data (setup.py copies them under toolkit/_data/)
DATA_FOLDERS = ("targets", "models", "firmware_stubs")


def in_checkout() -> bool:
    """True when running from the source tree (git checkout or editable install), not from a wheel."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "toolkit" / "paths.py").is_file()


def repo_dir(name: str) -> Path:
    """A data folder (targets, models, firmware_stubs): the checkout's own, else the wheel's copy."""
    if in_checkout() or name not in DATA_FOLDERS:
        return REPO_ROOT / name
    return PACKAGE_DATA / name


def cache_dir(*parts: str) -> Path:
    """$EDGETK_CACHE, else $XDG_CACHE_HOME/edgetk, else ~/.cache/edgetk (then `parts` below it)."""
    base = os.environ.get("EDGETK_CACHE") or ""
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or ""
        base = str(Path(xdg) / "edgetk") if os.path.isabs(xdg) else str(Path.home() / ".cache" / "edgetk")
    return Path(base).joinpath(*parts)


def shared_dir() -> Path:
    """The shared data folder: $EDGETK_SHARED, else ../shared beside the repository."""
    return Path(os.environ.get("EDGETK_SHARED", REPO_ROOT.parent / "shared")).resolve()


def external_model(rel: str) -> Path:
    """A file under shared/external, with an error that says where to get it when absent."""
    p = shared_dir() / "external" / rel
    if not p.is_file():
        raise EdgetkError(
            f"external model not found: {p}",
            fix="set EDGETK_SHARED to the folder holding external/ (mlcommons/tiny at 1afd2c98, "
            "tensorflow/tflite-micro at 90b983c2)",
        )
    return p
