"""Where the repository's data folders are: targets/, models/, firmware_stubs/, ../shared."""
from __future__ import annotations

import os
from pathlib import Path

from toolkit.errors import EdgetkError

REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_dir(name: str) -> Path:
    """A top-level folder of the repository (targets, models, firmware_stubs, hil)."""
    return REPO_ROOT / name


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
