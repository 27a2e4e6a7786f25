"""After SIGKILL (issue #14 item 7): stale temp folders are cleaned, no child outlives a killed export,
and `--resume` on a folder with nothing in it says so."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolkit.fsio import atomic_dir, atomic_write_bytes
from toolkit.paths import REPO_ROOT


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_atomic_dir_removes_temp_siblings_of_dead_processes_only(tmp_path):
    from toolkit.fsio import stale_name

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_dir = tmp_path / stale_name("bundle", _dead_pid(), "x1")
        live_dir = tmp_path / stale_name("bundle", live.pid, "x2")
        other = tmp_path / stale_name("other", _dead_pid(), "x3")
        for d in (dead_dir, live_dir, other):
            d.mkdir()
            (d / "model_fp32.onnx").write_bytes(b"partial")
        dead_file = tmp_path / stale_name("bundle", _dead_pid(), "x4")
        dead_file.write_bytes(b"partial")
        with atomic_dir(tmp_path / "bundle") as tmp:
            (tmp / "a").write_text("1")
        assert (tmp_path / "bundle" / "a").read_text() == "1"
        assert not dead_dir.exists() and not dead_file.exists()
        assert live_dir.exists() and other.exists()   # a running writer, and another artifact's leftovers
        atomic_write_bytes(tmp_path / "other", b"x")    # a file write cleans its own stale siblings too
        assert not other.exists()
    finally:
        live.kill()
        live.wait()


def _descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live descendant of pid, from /proc."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(d.name))
            starts[int(d.name)] = fields[19]
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add((c, starts[c]))
            todo.append(c)
    return out


def _alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == start


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from toolkit.paths import repo_dir
    from toolkit.recipe import load_recipe
    from toolkit.train import train

    recipe = load_recipe(repo_dir("models") / "image-digits.toml", ["train.epochs=1", "model.width=0.25"])
    return train(recipe, tmp_path_factory.mktemp("run") / "run")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; fix: run on Linux")
def test_sigkill_export_leaves_no_orphan_and_next_export_cleans_up(tiny_run, tmp_path):
    out = tmp_path / "bundle"
    env = {k: v for k, v in os.environ.items() if k not in ("NNCF_CI", "NNCF_DEV")}
    cmd = [sys.executable, "-m", "toolkit", "export", str(tiny_run), "-o", str(out), "--calib", "50"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: set[tuple[int, str]] = set()
    partial = False
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < 240:
        seen |= _descendants(proc.pid)
        partial = any(p.name.startswith(".bundle.") and (p / "model_int8.onnx").exists() for p in tmp_path.iterdir())
        if partial and seen:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"export ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert partial and seen, "no partial bundle or child process seen before the kill"
    deadline = time.monotonic() + 3
    while any(_alive(*c) for c in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in seen if _alive(*c)], "a child of the killed export is still running"
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.")]   # the kill left a partial folder
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]   # the next export removed the leftovers


def test_resume_on_an_empty_folder_says_nothing_to_resume(tmp_path):
    empty = tmp_path / "run"
    empty.mkdir()
    for folder in (empty, tmp_path / "absent"):
        proc = subprocess.run([sys.executable, "-m", "toolkit", "train", "--resume", str(folder)], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "nothing to resume" in proc.stderr and "recipe not found" not in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
