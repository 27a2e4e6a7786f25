"""Kill a real `edgetk train` of a [pretrain], [fleet], [distill] or [finetune] job after a checkpoint, resume it,
get bit-identical weights."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolkit.paths import REPO_ROOT

PRETRAIN, FINETUNE = 3, 10
PRETRAIN_ARGS = ["models/kws-digits-pretrain.toml", "--set", "model.width=0.25", "--set", f"pretrain.epochs={PRETRAIN}",
                 "--set", f"train.epochs={FINETUNE}", "--set", "pretrain.labels_per_class=50", "--json"]
FLEET_EPOCHS = 12
FLEET_ARGS = ["models/kws-digits-fleet.toml", "--set", "fleet.members=4", "--set", "fleet.stack=2",
              "--set", f"train.epochs={FLEET_EPOCHS}", "--json"]
DISTILL = 4
DISTILL_ARGS = ["models/kws-digits-distill.toml", "--set", "distill.teacher_width=0.5", "--set", f"train.epochs={DISTILL}",
                "--json"]
TUNE = 4
TUNE_ARGS = ["models/kws-digits-peft.toml", "--set", "model.width=0.25", "--set", f"train.epochs={TUNE}", "--json"]


def edgetk(*args: str) -> list[str]:
    return [sys.executable, "-m", "toolkit", *args]


def kill_when(args: list[str], ckpt: Path, log: Path) -> tuple[int, str]:
    """Run `edgetk train ARGS`, SIGKILL it as soon as ckpt appears; (the checkpoint's epoch, the run's log)."""
    with log.open("w") as err:
        proc = subprocess.Popen(edgetk("train", *args), cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 120
            while not ckpt.exists():
                assert proc.poll() is None, f"edgetk train {' '.join(args)} ended before {ckpt} appeared: {log.read_text()}"
                assert time.monotonic() < deadline, f"{ckpt} did not appear within 120 s"
                time.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return epoch_of(ckpt), log.read_text()


def run(*args: str) -> str:
    """Run `edgetk train ARGS` to the end; its log."""
    proc = subprocess.run(edgetk("train", *args), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def assert_same_weights(a: Path, b: Path, name: str = "model.safetensors") -> None:
    from safetensors.numpy import load_file

    wa, wb = load_file(a / name), load_file(b / name)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert wa[k].tobytes() == wb[k].tobytes(), (a / name, k)


def assert_same_metrics(a: Path, b: Path, *keys: str) -> None:
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for key in keys:
        assert ma[key] == mb[key], key


def epoch_of(ckpt: Path) -> int:
    import torch

    return int(torch.load(ckpt, weights_only=True)["epoch"])


@pytest.mark.slow
def test_pretrain_job_resumes_in_either_phase(shared, tmp_path: Path) -> None:
    killed, ckpts = tmp_path / "killed", tmp_path / "killed" / "checkpoints"
    stopped, _ = kill_when([*PRETRAIN_ARGS, "-o", str(killed)], ckpts / "pretrain.pt", tmp_path / "1.log")
    assert 1 <= stopped < PRETRAIN and not (ckpts / "last.pt").exists()        # killed while pretraining
    tuned, log = kill_when(["--resume", str(killed)], ckpts / "last.pt", tmp_path / "2.log")
    assert f"resuming {ckpts / 'pretrain.pt'} after epoch {stopped}" in log
    assert 1 <= tuned < FINETUNE and epoch_of(ckpts / "pretrain.pt") == PRETRAIN  # killed while fine-tuning
    log = run("--resume", str(killed))
    assert f"resuming {killed} after epoch {tuned}" in log                      # the trainer's own checkpoint

    straight = tmp_path / "straight"
    run(*PRETRAIN_ARGS, "-o", str(straight))
    assert_same_weights(killed, straight)
    assert_same_metrics(killed, straight, "pretrain_losses", "value", "final_loss", "n_train", "n_unlabelled")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_fleet_job_resumes_mid_stack(shared, tmp_path: Path, workers: int) -> None:
    """Killed while stack 1 trains (workers = 1: after stack 0; 2: beside it), resumed == one sequential run."""
    args = [*FLEET_ARGS, "--set", f"fleet.workers={workers}"]
    killed, ckpts = tmp_path / "killed", tmp_path / "killed" / "checkpoints"
    stopped, _ = kill_when([*args, "-o", str(killed)], ckpts / "stack-1.pt", tmp_path / "1.log")
    assert 1 <= stopped < FLEET_EPOCHS and not (killed / "fleet.json").exists()
    if workers == 1:
        assert epoch_of(ckpts / "stack-0.pt") == FLEET_EPOCHS
    epochs = {p.name: epoch_of(p) for p in ckpts.glob("stack-*.pt")}
    time.sleep(1.0)                                           # an epoch takes ~0.2 s: orphaned workers would show
    assert {p.name: epoch_of(p) for p in ckpts.glob("stack-*.pt")} == epochs, "a worker outlived its killed job"
    log = run("--resume", str(killed))
    for name, epoch in epochs.items():
        assert f"resuming {ckpts / name} after epoch {epoch}" in log
    assert json.loads((killed / "fleet.json").read_text())["workers"] == workers

    straight = tmp_path / "straight"
    run(*FLEET_ARGS, "--set", "fleet.workers=1", "-o", str(straight))
    members = [json.loads((d / "fleet.json").read_text())["members"] for d in (killed, straight)]
    assert [m["name"] for m in members[0]] == [m["name"] for m in members[1]] and len(members[0]) == 4
    for a, b in zip(*members):
        assert a["value"] == b["value"]
        assert_same_weights(killed / a["name"], straight / b["name"])


@pytest.mark.slow
def test_distill_job_resumes_the_student(shared, tmp_path: Path) -> None:
    """teacher_run = "": the job trains <out>-teacher, then the student; killed mid-student, resumed == a straight student."""
    killed, teacher = tmp_path / "killed", tmp_path / "killed-teacher"
    stopped, _ = kill_when([*DISTILL_ARGS, "-o", str(killed)], killed / "checkpoints" / "last.pt", tmp_path / "1.log")
    assert 1 <= stopped < DISTILL and epoch_of(teacher / "checkpoints" / "last.pt") == DISTILL
    trained = (teacher / "model.safetensors").read_bytes()
    log = run("--resume", str(killed))
    assert f"resuming {killed} after epoch {stopped}" in log and f"resuming {teacher}" not in log
    assert (teacher / "model.safetensors").read_bytes() == trained                 # the teacher is not trained again

    straight = tmp_path / "straight"
    run(*DISTILL_ARGS, "--set", f"distill.teacher_run={teacher}", "-o", str(straight))
    assert_same_weights(killed, straight)
    assert_same_metrics(killed, straight, "value", "final_loss", "teacher_run", "teacher_value")


@pytest.fixture(scope="module")
def base_run(shared, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch kws-digits run on the 4 speakers that models/kws-digits-peft.toml does not adapt to."""
    out = tmp_path_factory.mktemp("base") / "run"
    run("models/kws-digits.toml", "--set", "model.width=0.25", "--set", "train.epochs=1",
        "--set", 'data.groups=["george", "jackson", "lucas", "nicolas"]', "-o", str(out))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lora", "adapter"])
def test_finetune_job_resumes(base_run: Path, tmp_path: Path, mode: str) -> None:
    """Killed after the first epochs of a PEFT run, resumed == a straight one: merged (lora) and unmerged weights."""
    args = [*TUNE_ARGS, "--set", f"finetune.base_run={base_run}", "--set", f"finetune.mode={mode}"]
    killed = tmp_path / "killed"
    stopped, _ = kill_when([*args, "-o", str(killed)], killed / "checkpoints" / "last.pt", tmp_path / "1.log")
    assert 1 <= stopped < TUNE and not (killed / "peft.safetensors").exists()
    assert f"resuming {killed} after epoch {stopped}" in run("--resume", str(killed))

    straight = tmp_path / "straight"
    run(*args, "-o", str(straight))
    assert_same_weights(killed, straight)
    assert_same_weights(killed, straight, "peft.safetensors")
    assert_same_metrics(killed, straight, "value", "final_loss", "merged", "trainable_params", "extra_params")
    assert json.loads((killed / "metrics.json").read_text())["merged"] == (mode == "lora")
