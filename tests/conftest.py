"""Fixtures and skip rules shared by every test module."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from toolkit.paths import shared_dir

FIXES = {
    "qemu-system-arm": "apt-get install qemu-system-arm",
    "arm-none-eabi-gcc": "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-size": "apt-get install gcc-arm-none-eabi",
    "gcc": "apt-get install gcc",
}


def require_tool(name: str) -> str:
    """Path of an external tool; skip with the fix when absent, fail under EDGETK_REQUIRE_QEMU=1."""
    path = shutil.which(name)
    if path:
        return path
    msg = f"{name} not found; fix: {FIXES.get(name, 'install ' + name)}"
    if os.environ.get("EDGETK_REQUIRE_QEMU") == "1":
        pytest.fail(f"{msg} (EDGETK_REQUIRE_QEMU=1 turns this skip into a failure)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared (or $EDGETK_SHARED); skip with the reason when it is not beside the repo."""
    d = shared_dir()
    if not (d / "MANIFEST.md").is_file():
        pytest.skip(f"shared data folder not found at {d}; fix: set EDGETK_SHARED")
    return d


@pytest.fixture(scope="session")
def external(shared: Path) -> Path:
    """shared/external, the MLPerf Tiny and TFLite-Micro reference models."""
    return shared / "external"
