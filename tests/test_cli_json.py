"""CLI conventions: every command has --json and prints one JSON document on stdout (human text on stderr);
-v/-q go before or after the command; a closed pipe or Ctrl-C ends quietly with the documented exit code.

Each command runs as a user runs it (a child process, its real stdout and stderr). Commands whose real run
takes minutes (train, export, merge, demo) and compare (it needs two recorded runs) are run on an input error: under --json that is a JSON document
too ({"error", "fix", "exit_code": 2}); `train --json` on a real run is covered by tests/test_train_resume.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_tool
from toolkit.cli import build_parser
from toolkit.paths import REPO_ROOT

EDGETK = [sys.executable, "-m", "toolkit"]
MODEL = REPO_ROOT / "tests" / "data" / "lstm_fsdd_int8.tflite"
IMU = REPO_ROOT / "models" / "imu-motions.toml"

# command -> (arguments, the exit code it must give, a key its JSON document must hold)
CASES = {
    "train": (["--resume", "{tmp}/no-run"], 2, "error"),
    "data": ([str(IMU)], 0, "classes"),
    "info": ([str(IMU), "--set", "model.width=0.25"], 0, "task"),
    "export": (["{tmp}/no-run"], 2, "error"),
    "import": ([str(MODEL), "-o", "{tmp}/imported"], 0, "source"),
    "inspect": ([str(MODEL)], 0, "ops"),
    "codegen": ([str(MODEL), "-o", "{tmp}/c"], 0, "arena_size"),
    "merge": (["{tmp}"], 2, "error"),
    "build": ([str(MODEL), "--target", "host-sim", "-o", "{tmp}/build"], 0, "firmware"),
    "flash": ([str(MODEL), "--target", "host-sim"], 0, "sha256"),
    "profile": ([str(MODEL), "--target", "host-sim", "--samples", "2", "-o", "{tmp}/profile"], 0, "checks"),
    "validate": ([str(MODEL), "--target", "host-sim", "--samples", "2", "-o", "{tmp}/validate"], 0, "verdict"),
    "history": ([], 0, "runs"),
    "compare": (["1", "2"], 2, "error"),
    "targets": ([], 0, "qemu-m4"),
    "ports": ([], 0, None),
    "doctor": ([], 0, "edgetk"),
    "demo": (["--task", "no-such-task"], 2, "error"),
    "distill-data": ([str(IMU), "--per-class", "0", "-o", "{tmp}/d"], 2, "error"),
}


def commands() -> list[str]:
    """The command names the CLI registers."""
    parser = build_parser()
    return sorted(next(a for a in parser._actions if a.dest == "command").choices)


def test_every_command_has_a_json_case():
    assert set(commands()) <= set(CASES), "add a --json case for each new command to CASES"


@pytest.mark.parametrize("command", sorted(CASES))
def test_json_output_parses(command: str, tmp_path: Path):
    if command not in commands():
        pytest.skip(f"`edgetk {command}` is not registered in this tree (toolkit/cli.py COMMANDS)")
    if command in ("build", "flash", "profile", "validate"):
        require_tool("gcc")
    argv, code, key = CASES[command]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    env = {**os.environ, "EDGETK_HISTORY": str(tmp_path / "history.sqlite")}  # not the user's store
    proc = subprocess.run([*EDGETK, command, *argv, "--json"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env)
    assert proc.returncode == code, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)  # one document, nothing else on stdout
    if key is not None:
        assert key in doc, sorted(doc)
    if code == 2:
        assert doc["exit_code"] == 2 and doc["fix"] and "error:" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv, command", [(["profile", "--json"], "profile"), (["--json", "no-such-command"], None)])
def test_usage_error_is_a_json_document_too(argv: list[str], command: str | None):
    proc = subprocess.run([*EDGETK, *argv], capture_output=True, text=True, timeout=60)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and doc["exit_code"] == 2 and doc["command"] == command and "usage:" in proc.stderr


def test_options_go_before_or_after_the_command():
    for argv in (["--json", "-q", "targets"], ["targets", "--json", "-q"], ["-v", "targets", "--json"]):
        proc = subprocess.run([*EDGETK, *argv], capture_output=True, text=True, timeout=60, check=True)
        assert "qemu-m4" in json.loads(proc.stdout), argv


def test_help_documents_exit_codes_and_the_flow():
    out = subprocess.run([*EDGETK, "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
    for words in ("exit status", "0    ok", "1    a check failed", "2    usage or input error", "130", "141",
                  "edgetk train", "edgetk export", "edgetk profile", "edgetk validate"):
        assert words in out, words


@pytest.mark.parametrize("argv", [["targets", "--json"], ["targets"]])
def test_closed_pipe_ends_quietly(argv: list[str]):
    """The reader goes away before edgetk writes (like `| head -c 10` on a big output): exit 141, no traceback."""
    proc = subprocess.Popen([*EDGETK, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 and b"Traceback" not in err and b"Exception ignored" not in err, err.decode()


def test_ctrl_c_is_one_line_and_130(tmp_path: Path):
    proc = subprocess.Popen([*EDGETK, "train", str(IMU), "-o", str(tmp_path / "run"), "--json",
                             "--set", "train.epochs=1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert '"epoch"' in proc.stdout.readline()  # training is under way
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            time.sleep(0.1)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "edgetk train: interrupted", err[-2000:]
