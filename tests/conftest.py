"""Fixtures and skip rules shared by every test module."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from toolkit.paths import shared_dir
from toolkit.pytest_plugin import skip_without_data
from toolkit.tools import install_hint

# Every profile appends to the history store: the tests' runs go to a store of their own, never the user's.
os.environ["EDGETK_HISTORY"] = os.path.join(tempfile.mkdtemp(prefix="edgetk-test-history-"), "history.sqlite")
# The per-layer run (a second cross-compile and QEMU run per profile) is measured by the tests that ask for it
# (test_report_*.py set EDGETK_PROFILE_LAYERS=1); elsewhere it would only add minutes to the suite.
os.environ["EDGETK_PROFILE_LAYERS"] = "0"


def require_tool(name: str, fix: str | None = None) -> str:
    """Path of an external tool (on PATH, or beside this Python: a venv's console scripts); skip with the fix
    when absent, fail under EDGETK_REQUIRE_QEMU=1."""
    here = Path(sys.executable).parent / name
    path = shutil.which(name) or (str(here) if here.is_file() else None)
    if path:
        return path
    msg = f"{name} not found; fix: {fix or install_hint(name)}"
    if os.environ.get("EDGETK_REQUIRE_QEMU") == "1":
        pytest.fail(f"{msg} (EDGETK_REQUIRE_QEMU=1 turns this skip into a failure)")
    pytest.skip(msg)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, log: Path, what: str, timeout: float = 10.0) -> None:
    """Wait until something accepts on 127.0.0.1:port; fail with the log's tail when `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                pytest.fail(f"{what} did not start: {log.read_text(errors='replace')[-800:]}")
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` (a process this test started; idempotent)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_ser2net(pty: str, folder: Path, port: int | None = None) -> tuple[subprocess.Popen, int]:
    """A real ser2net exporting `pty` over RFC 2217 on 127.0.0.1:port (a free one by default), listening."""
    exe = require_tool("ser2net")
    port = port or free_port()
    conf, log = folder / f"ser2net-{port}.yaml", folder / f"ser2net-{port}.log"
    conf.write_text(f"%YAML 1.1\n---\nconnection: &lab\n  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
                    f"  connector: serialdev,{pty},115200n81,local\n  options:\n    kickolduser: true\n")
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "-n", "-u", "-c", str(conf), "-P", str(folder / f"ser2net-{port}.pid")],
                                stdout=out, stderr=subprocess.STDOUT)
    wait_listening(port, proc, log, "ser2net")
    return proc, port


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared (or $EDGETK_SHARED); skip with the reason when it is not beside the repo."""
    d = shared_dir()
    if not (d / "MANIFEST.md").is_file():
        skip_without_data(f"shared data folder not found at {d}; fix: set EDGETK_SHARED")
    return d


@pytest.fixture(scope="session")
def external(shared: Path) -> Path:
    """shared/external, the MLPerf Tiny and TFLite-Micro reference models."""
    return shared / "external"


# Short training schedules on the real data for the test suite (the recipes' own, longer ones are
# for `make demo`). Each still clears its acceptance floor (tests/test_train_accuracy.py).
TEST_OVERRIDES = {
    "imu-motions": ["train.epochs=15"],
    "kws-digits": ["train.epochs=6"],
    "ecg-anomaly": [],
    "image-digits": ["train.epochs=8"],
}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory):
    """Factory: trained_run("imu-motions") trains that task once per session (short config) and returns the run dir."""
    from toolkit.paths import repo_dir
    from toolkit.recipe import load_recipe
    from toolkit.train import train

    done: dict[str, Path] = {}

    def factory(task: str) -> Path:
        if task not in done:
            if task == "kws-digits" and not (shared_dir() / "data" / "fsdd").is_dir():
                skip_without_data(f"FSDD not found under {shared_dir()}; fix: set EDGETK_SHARED")
            recipe = load_recipe(repo_dir("models") / f"{task}.toml", TEST_OVERRIDES.get(task, []))
            done[task] = train(recipe, tmp_path_factory.mktemp(f"run-{task}"))
        return done[task]

    return factory


@pytest.fixture(scope="session")
def exported_bundle(trained_run, tmp_path_factory: pytest.TempPathFactory):
    """Factory: exported_bundle("imu-motions") exports trained_run(task) once per session (NNCF PTQ,
    ONNX + TFLite) and returns the bundle dir."""
    from toolkit.export import export_run

    done: dict[str, Path] = {}

    def factory(task: str) -> Path:
        if task not in done:
            done[task] = export_run(trained_run(task), tmp_path_factory.mktemp(f"bundle-{task}") / "bundle")
        return done[task]

    return factory


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (tiny models on a shared 2-core machine slow down with two)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
