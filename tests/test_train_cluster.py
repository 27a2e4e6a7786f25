"""`edgetk train --cluster`: a real Ray cluster of two nodes on 127.0.0.1 (a head and a second node, 1 CPU each,
separate `ray start` processes), started here and killed afterwards; members and runs bit-identical to the
local job, two recipes at once, a worker SIGKILLed mid-job, an unreachable address, Ray missing."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port, require_tool
from toolkit.cli import main
from toolkit.recipe import load_recipe

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow,
              pytest.mark.timeout(400)]   # each test, its share of the cluster fixture included
RAY_FIX = "pip install 'edgetk[cluster]'"
FLEET = ["fleet.members=4", "fleet.stack=2", "fleet.workers=2", "train.epochs=3"]   # 2 stacks of 2 speakers
PLAIN = ["model.width=0.25", "train.epochs=1"]


def _require_ray() -> str:
    """The `ray` CLI (installed with the module); skip with the fix when Ray is missing, fail under
    EDGETK_REQUIRE_QEMU=1."""
    return require_tool("ray", fix=RAY_FIX)


@pytest.fixture(scope="module")
def recipes(tmp_path_factory, shared) -> dict[str, Path]:
    """The two test recipes as files: a fleet of 4 speakers (2 stacks, 3 epochs) and a plain 1-epoch run."""
    folder = tmp_path_factory.mktemp("recipes")
    out = {}
    for name, src, sets in (("fleet", "models/kws-digits-fleet.toml", FLEET),
                            ("plain", "models/image-digits.toml", PLAIN)):
        out[name] = folder / f"{name}.toml"
        out[name].write_text(load_recipe(src, sets).to_toml())
    return out


@pytest.fixture(scope="module")
def cluster(recipes, tmp_path_factory) -> tuple[str, dict[str, Path]]:
    """A head and a second node on 127.0.0.1 (1 CPU, 80 MB object store each, separate `ray start` processes),
    and the reference: both recipes run on this machine by `edgetk train` (the fleet in 2 forked workers), in
    child processes while the nodes start. Yields (address, {recipe: local run}). Every process of the nodes'
    sessions is killed after the module, also when a test failed (local_cluster raises when one survives)."""
    from toolkit.cluster import local_cluster

    _require_ray()
    folder = tmp_path_factory.mktemp("local")
    jobs = {name: subprocess.Popen([sys.executable, "-m", "toolkit", "-q", "train", str(path), "-o",
                                    str(folder / name)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for name, path in recipes.items()}
    tmp = Path(tempfile.mkdtemp(prefix="edgetk-ray-", dir="/tmp"))      # short: Ray's socket paths stay < 108 bytes
    try:
        with local_cluster(2, tmp) as address:
            import ray

            ray.init(address=address, log_to_driver=False, logging_level="WARNING")
            nodes = [n for n in ray.nodes() if n["Alive"]]
            ray.shutdown()
            assert len(nodes) == 2 and [n["Resources"]["CPU"] for n in nodes] == [1.0, 1.0]
            for name, job in jobs.items():
                log = job.communicate(timeout=300)[0]
                assert job.returncode == 0, f"local {name} run failed: {log[-2000:]}"
            yield address, {name: folder / name for name in recipes}
    finally:
        for job in jobs.values():
            if job.poll() is None:
                job.kill()
                job.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors"))


def _same_members(fleet: Path, reference: Path) -> dict:
    """fleet.json of `fleet`, after checking every member's weights and metric are the reference's, bit for bit."""
    import torch

    summary, ref = (json.loads((d / "fleet.json").read_text()) for d in (fleet, reference))
    assert [m["name"] for m in summary["members"]] == [m["name"] for m in ref["members"]]
    for m, r in zip(summary["members"], ref["members"]):
        a, b = _weights(fleet / m["name"]), _weights(reference / r["name"])
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), m["name"]
        assert (m["value"], m["trained_value"]) == (r["value"], r["trained_value"])
    return summary


def test_fleet_and_a_plain_recipe_at_once_equal_the_local_runs(cluster, recipes, tmp_path, caplog):
    """Both recipes in one call: the fleet's 2 stacks and the plain recipe ran as tasks on the two nodes, every
    member and the plain run have the local job's bits."""
    import torch

    caplog.set_level(logging.INFO, logger="toolkit.cluster")
    (address, local), out = cluster, tmp_path / "runs"
    assert main(["train", str(recipes["fleet"]), str(recipes["plain"]), "--cluster", address, "-o", str(out)]) == 0
    summary = _same_members(out / "fleet", local["fleet"])
    tasks = summary["cluster"]["tasks"]
    assert summary["cluster"]["nodes"] == 2 and summary["workers"] == 2
    assert [t["stack"] for t in tasks] == [0, 1]
    assert all(t["start_epoch"] == 0 and t["pid"] != os.getpid() for t in tasks)
    plain = [r.args for r in caplog.records if r.msg.startswith("cluster: %s trained on node")]
    assert len(plain) == 1 and plain[0][0] == out / "plain"
    assert len({t["node"] for t in tasks} | {plain[0][1]}) == 2                   # both nodes trained
    a, b = _weights(out / "plain"), _weights(local["plain"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "plain" / "metrics.json").read_text())["value"] == \
        json.loads((local["plain"] / "metrics.json").read_text())["value"]


def _pid_of(title: str) -> int | None:
    """The process whose title (Ray sets `ray::<task name>` while a task runs) is `title`."""
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and (d / "cmdline").read_bytes().split(b"\0")[0].decode() == title:
                return int(d.name)
        except (OSError, UnicodeDecodeError):
            continue
    return None


def test_killed_worker_is_retried_from_its_checkpoint(cluster, recipes, tmp_path, monkeypatch):
    """--cluster auto ($RAY_ADDRESS). Stack 0's worker process gets SIGKILL after its first epoch's checkpoint;
    Ray retries the task in a new process, which continues from that checkpoint: the same members, bit for bit."""
    from toolkit.train.checkpoint import LOOP_KEYS, load_checkpoint

    address, local = cluster
    monkeypatch.setenv("RAY_ADDRESS", address)
    out = tmp_path / "killed"
    result: list[int] = []
    job = threading.Thread(target=lambda: result.append(main(["train", str(recipes["fleet"]), "--cluster", "auto",
                                                               "-o", str(out)])))
    job.start()
    ckpt, deadline, pid = out / "checkpoints" / "stack-0.pt", time.monotonic() + 120, None
    while pid is None and job.is_alive() and time.monotonic() < deadline:
        if ckpt.is_file():
            pid = _pid_of(f"ray::edgetk-{out.name}-stack-0")
        time.sleep(0.02)
    assert pid is not None, "stack 0's task was not found running after its first checkpoint"
    epoch = int(load_checkpoint(ckpt, LOOP_KEYS)["epoch"])
    os.kill(pid, signal.SIGKILL)
    assert 1 <= epoch < 3, epoch                              # killed mid-job: epochs were left to train
    job.join(timeout=180)
    assert not job.is_alive() and result == [0]
    summary = _same_members(out, local["fleet"])
    stack0 = summary["cluster"]["tasks"][0]
    assert stack0["pid"] != pid and stack0["start_epoch"] >= epoch   # a new process, resumed from the checkpoint


def test_unreachable_address_is_one_error(recipes, tmp_path, monkeypatch, capsys):
    """Nothing listens at the address: exit 2, one message naming it and the fix, no traceback, nothing written."""
    _require_ray()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    assert main(["train", str(recipes["fleet"]), "--cluster", address, "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Ray cluster at {address}" in err and "fix:" in err and "Traceback" not in err
    assert time.monotonic() - t0 < 30 and not (tmp_path / "x").exists()
    assert main(["train", str(recipes["fleet"]), "--cluster", address, "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 2 and address in doc["error"] and "ray start" in doc["fix"]


def test_without_ray_is_one_error(recipes, tmp_path):
    """Ray not importable (blocked in a fresh interpreter): the toolkit imports, --cluster is one error with the fix."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "from toolkit.cli import main\n"
            f"sys.exit(main(['train', {str(recipes['fleet'])!r}, '--cluster', 'auto', '-o', {str(tmp_path / 'x')!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parent.parent)
    assert p.returncode == 2, p.stderr
    assert "--cluster needs Ray, which is not installed" in p.stderr and RAY_FIX in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "x").exists()
