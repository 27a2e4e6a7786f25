"""Progress display (toolkit/progress.py): drawn on stderr at a terminal (a real pseudo-terminal here), with
rate and ETA; nothing but the result on stdout; off under --json, -q or a non-terminal stderr; NNCF's own bars
never on stdout; training bits unchanged by the display."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EDGETK = [sys.executable, "-m", "toolkit"]
IMU = REPO / "models" / "imu-motions.toml"
TRAIN = ["--set", "train.epochs=30", "--set", "train.batch_size=2"]   # ~1 s: the display refreshes 10 times a second
NNCF_BARS = ("Statistics collection", "Applying Fast Bias correction", "%|")   # NNCF's bar texts, tqdm's signature
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run(argv: list[str], cwd: Path, *, tty: bool) -> tuple[int, str, str]:
    """Run edgetk with stderr on a pseudo-terminal (tty=True) or a pipe; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", "EDGETK_HISTORY": str(cwd / "history.sqlite")}
    env.pop("NO_COLOR", None)
    master, slave = pty.openpty() if tty else os.pipe()
    proc = subprocess.Popen([*EDGETK, *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks: dict[int, list[bytes]] = {master: [], proc.stdout.fileno(): []}
    open_fds = set(chunks)
    while open_fds:
        for fd in select.select(list(open_fds), [], [], 120)[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:  # a pty's master reads EIO once the child side is closed
                data = b""
            if not data:
                open_fds.discard(fd)
            chunks[fd].append(data)
    code = proc.wait(timeout=120)
    os.close(master)
    text = lambda fd: b"".join(chunks[fd]).decode("utf-8", "replace")  # noqa: E731
    return code, text(proc.stdout.fileno()), ANSI.sub("", text(master)).replace("\r\n", "\n")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("progress")


@pytest.fixture(scope="module")
def shown_run(work: Path) -> tuple[int, str, str]:
    """A short training at a terminal (display on)."""
    return _run(["train", str(IMU), "-o", str(work / "run-tty"), *TRAIN], work, tty=True)


def test_training_progress_at_a_terminal(shown_run: tuple[int, str, str]) -> None:
    code, out, err = shown_run
    assert code == 0, err[-2000:]
    assert re.search(r"epoch \d+/30 .*\d+/20 [\d.,]+ batch/s eta \d+:\d\d", err), err[-3000:]
    assert re.search(r"train imu-motions .*\d+/30 [\d.,]+ epoch/s eta \d+:\d\d", err), err[-3000:]
    assert "loss " in err
    assert out.startswith("imu-motions: test_top1") and len(out.splitlines()) == 1, out   # nothing else on stdout


def test_display_does_not_change_the_weights(shown_run: tuple[int, str, str], work: Path) -> None:
    code, out, err = _run(["train", str(IMU), "-o", str(work / "run-quiet"), *TRAIN, "-q"], work, tty=True)
    assert code == 0, err[-2000:]
    assert "━" not in err and "/s eta" not in err, err[-2000:]   # -q: no display at a terminal either
    assert shown_run[0] == 0
    a, b = (work / "run-tty" / "model.safetensors").read_bytes(), (work / "run-quiet" / "model.safetensors").read_bytes()
    assert a == b


def test_export_at_a_terminal_routes_nncf_to_stderr(shown_run: tuple[int, str, str], work: Path) -> None:
    code, out, err = _run(["export", str(work / "run-tty"), "-o", str(work / "b-tty"), "--calib", "16"], work, tty=True)
    assert code == 0, err[-2000:]
    assert re.search(r"✓ quantize: nncf on 16 calibration samples \(\d+\.\d s\)", err), err[-3000:]
    assert "✓ fidelity: " in err and "Statistics collection" in err   # NNCF's bar, drawn in the display
    assert out.startswith("# Fidelity") and not any(s in out for s in NNCF_BARS), out[:500]


def test_export_json_at_a_terminal_is_one_document(shown_run: tuple[int, str, str], work: Path) -> None:
    code, out, err = _run(["export", str(work / "run-tty"), "-o", str(work / "b-json"), "--calib", "16", "--json"],
                          work, tty=True)
    assert code == 0, err[-2000:]
    assert json.loads(out)["bundle"] == str(work / "b-json")
    assert not any(s in err for s in NNCF_BARS) and "━" not in err and "✓" not in err, err[-2000:]


def test_export_piped_has_no_bars(shown_run: tuple[int, str, str], work: Path) -> None:
    code, out, err = _run(["export", str(work / "run-tty"), "-o", str(work / "b-pipe"), "--calib", "16"], work, tty=False)
    assert code == 0, err[-2000:]
    assert out.startswith("# Fidelity")
    assert not any(s in out + err for s in NNCF_BARS) and "━" not in out + err, (out[:300], err[-1000:])


def test_onnxruntime_hints_on_the_root_logger_are_dropped(shown_run: tuple[int, str, str], work: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np
    import onnx

    from toolkit.quant import quantize_onnx

    fp32 = work / "b-pipe" / "model_fp32.onnx"
    if not fp32.is_file():
        pytest.skip("needs test_export_piped_has_no_bars's bundle")
    dims = [d.dim_value for d in onnx.load(str(fp32)).graph.input[0].type.tensor_type.shape.dim][1:]
    calib = np.random.default_rng(0).standard_normal((8, *dims)).astype(np.float32)
    with caplog.at_level("INFO"):
        quantize_onnx(fp32, calib, "ort")
    assert any("quantizing" in r.getMessage() for r in caplog.records)        # edgetk's own records pass
    assert not [r.getMessage() for r in caplog.records if r.name == "root"], caplog.text[-1000:]
