"""A board lab on the network, all real and on 127.0.0.1: a labgrid coordinator and two labgrid exporters
(separate processes, free ports, temp folders, stopped afterwards), each exporting a host-simulator device.
Exporter A exports the simulator's pty as a RawSerialPort: labgrid's exporter starts ser2net (RFC 2217) for it
when the place is acquired. Exporter B describes a ser2net of the lab's own (on 127.0.0.1) as a
NetworkSerialPort. Places lab-a and lab-b are made with labgrid-client (create, add-match, set-tags).

A pseudo-terminal has no modem lines, so the lab file gives both places url_options = "ign_set_control"
(as in tests/test_hil_rfc2217.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import free_port, require_tool, start_ser2net, stop_process, wait_listening
from test_hil_rfc2217 import LAB_BOARD
from test_transport_faults import HELLO, _campaign
from toolkit.cli import main
from toolkit.errors import EdgetkError
from toolkit.hil.adapters import make_target
from toolkit.hil.bundle import bundle_from_tflite
from toolkit.hil.dut import Dut, LinkPolicy
from toolkit.hil.faults import FaultyTransport
from toolkit.hil.lab import (LabClient, busy_error, lab_filter, lab_target, lease, load_lab, matching, parse_lab,
                             serial_params, serial_url)
from toolkit.hil.runner import c_library
from toolkit.hil.transport import Transport
from toolkit.runtimes import run_tflm
from toolkit.targets import get_target

LABGRID_FIX = "pip install 'edgetk[lab]' (labgrid 26: labgrid-coordinator, labgrid-exporter, labgrid-client)"
REPO = Path(__file__).resolve().parents[1]


class Lab:
    """The running lab: processes, coordinator address, lab file, targets folder, bundle, ser2net of exporter B."""

    def __init__(self, d: Path) -> None:
        self.d, self.procs, self.sims = d, [], []
        self.coordinator = self.lab_file = self.targets = self.bundle = self.b_ser2net = None
        self.b_port, self.b_pty = 0, ""
        self.api: LabClient | None = None  # labgrid's client (its own process), for the idle() checks

    def client(self, *args: str, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, **({"LG_USERNAME": user} if user else {})}
        proc = subprocess.run([require_tool("labgrid-client", LABGRID_FIX), "-x", self.coordinator, *args],
                              capture_output=True, text=True, timeout=30, env=env)
        assert not check or proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def spawn(self, name: str, cmd: list[str], cwd: Path) -> subprocess.Popen:
        with open(self.d / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def idle(self) -> bool:
        """No place held and no reservation left."""
        if self.api is None:
            self.api = LabClient(self.coordinator)
        return all(p["acquired"] is None for p in self.api.places().values()) and not self.api.reservations()

    def close(self) -> None:
        if self.api is not None:
            self.api.close()
        for proc in reversed(self.procs + ([self.b_ser2net] if self.b_ser2net else [])):
            stop_process(proc)
        for sim in self.sims:
            sim.stop()


def _start(lab: Lab, external: Path) -> None:
    d = lab.d
    lab.bundle = bundle_from_tflite(external / HELLO, d / "bundle", samples=4)
    spec = get_target("host-sim")
    lab.sims = [make_target(spec), make_target(spec)]
    fw = lab.sims[0].build(c_library(lab.bundle, d / "build", spec), d / "build")
    lab.sims[1].firmware = fw
    pty_a, lab.b_pty = lab.sims[0].start(), lab.sims[1].start()
    lab.b_ser2net, lab.b_port = start_ser2net(lab.b_pty, d)

    port = free_port()
    lab.coordinator = f"127.0.0.1:{port}"
    (d / "coordinator").mkdir()
    coord = lab.spawn("coordinator", [require_tool("labgrid-coordinator", LABGRID_FIX), "-l", lab.coordinator],
                      d / "coordinator")
    wait_listening(port, coord, d / "coordinator.log", "labgrid-coordinator", timeout=30)
    (d / "a.yaml").write_text(f"a:\n  RawSerialPort:\n    port: {pty_a}\n    speed: 115200\n")
    (d / "b.yaml").write_text(f"b:\n  NetworkSerialPort:\n    host: 127.0.0.1\n    port: {lab.b_port}\n"
                              "    speed: 115200\n    protocol: rfc2217\n")
    for name in ("a", "b"):
        lab.spawn(f"exporter-{name}", [require_tool("labgrid-exporter", LABGRID_FIX), "-c", lab.coordinator,
                                       "-n", f"exp-{name}", "--hostname", "127.0.0.1", str(d / f"{name}.yaml")], d)
    deadline = time.monotonic() + 20
    while not all(f"exp-{n}/{n}/" in lab.client("resources").stdout for n in "ab"):
        assert time.monotonic() < deadline and all(p.poll() is None for p in lab.procs), \
            "exporters did not register: " + "".join((d / f"exporter-{n}.log").read_text()[-600:] for n in "ab")
        time.sleep(0.2)

    def make_place(name: str) -> None:
        place = f"lab-{name}"
        lab.client("-p", place, "create")
        lab.client("-p", place, "add-match", f"exp-{name}/{name}/*")
        lab.client("-p", place, "set-tags", "board=lab-board", f"desk={name}")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(make_place, "ab"))
    lab.targets = d / "targets"
    lab.targets.mkdir()
    (lab.targets / "lab-board.toml").write_text(LAB_BOARD)
    lab.lab_file = d / "lab.toml"
    lab.lab_file.write_text(f'[lab]\ncoordinator = "{lab.coordinator}"\nwait_s = 60\n\n'
                            + "".join(f'[places.lab-{n}]\ntarget = "lab-board"\nurl_options = "ign_set_control"\n\n'
                                      for n in "ab"))


@pytest.fixture(scope="module")
def lab(external, tmp_path_factory, monkeypatch_module):
    """The lab, started here and stopped afterwards (also when starting it failed part way)."""
    require_tool("gcc")
    require_tool("ser2net")
    for tool in ("labgrid-coordinator", "labgrid-exporter", "labgrid-client"):
        require_tool(tool, LABGRID_FIX)
    monkeypatch_module.delenv("LG_COORDINATOR", raising=False)
    running = Lab(tmp_path_factory.mktemp("labgrid"))
    try:
        _start(running, external)
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _args(lab: Lab, out: Path, *more: str) -> list[str]:
    return ["profile", str(lab.bundle.path), "--lab-file", str(lab.lab_file), "--targets", str(lab.targets),
            "--samples", "4", "-o", str(out), *more]


def test_two_jobs_for_one_place_take_turns_and_are_bit_exact(lab, tmp_path):
    """Two `edgetk profile` processes at once for lab-a, one by tag (desk=a), one by name: both pass bit-exact
    (golden outputs and TFLite-Micro), their holds do not overlap, the second waited, the place is let go."""
    cmd = [sys.executable, "-m", "toolkit.cli", "--json"]
    asks = (["--lab", "desk=a", "--target", "lab-board"], ["--lab", "lab-a"])
    jobs = [subprocess.Popen(cmd + _args(lab, tmp_path / f"p{i}", *ask), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=REPO) for i, ask in enumerate(asks)]
    docs = []
    try:
        for job in jobs:
            out, err = job.communicate(timeout=120)
            assert job.returncode == 0, err[-2000:]
            docs.append(json.loads(out)["report"])
    finally:
        for job in jobs:
            stop_process(job)
    for rep in docs:
        assert rep["ran_on"] == "lab-board" and rep["fallbacks"] == [] and rep["samples"] == 4
        assert rep["lab"]["url"].startswith("rfc2217://127.0.0.1:") and rep["lab"]["place"] == "lab-a"
        golden = next(c for c in rep["comparisons"] if c["reference"].startswith("golden"))
        tflm = next(c for c in rep["comparisons"] if c["reference"].startswith("TFLite-Micro"))
        assert golden["max_lsb_diff"] == 0 and tflm["max_lsb_diff"] == 0 and tflm["samples"] == 4
    first, second = sorted((r["lab"] for r in docs), key=lambda x: x["acquired_at"])
    assert first["released_at"] <= second["acquired_at"], (first, second)
    assert second["waited_s"] > first["waited_s"] + 0.5, (first, second)
    assert lab.idle()


def test_a_place_held_by_someone_else_is_one_clear_error_after_the_wait(lab, tmp_path, capsys):
    lab.client("-p", "lab-b", "acquire", user="someone-else")
    try:
        t0 = time.monotonic()
        assert main(_args(lab, tmp_path / "p", "--lab", "lab-b", "--lab-wait", "2")) == 2
        err = capsys.readouterr().err
        assert "no lab place matching name=lab-b came free within 2 s" in err and "someone-else" in err, err
        assert "--lab-wait" in err and err.count("error:") == 1 and "Traceback" not in err
        assert time.monotonic() - t0 < 20
    finally:
        lab.client("-p", "lab-b", "release", user="someone-else")
    assert lab.idle()


def test_link_faults_on_a_lab_place_never_yield_a_wrong_result(lab):
    """Drops, flips and inserted bytes on a leased place's RFC 2217 link: retried or a clear error."""
    xs = np.arange(-128, 128, dtype=np.int8).reshape(256, *lab.bundle.x.shape[1:])
    table = run_tflm(lab.bundle.tflite, xs).reshape(256, -1)
    with lease("desk=a", load_lab(lab.lab_file)) as held, Transport(held.url) as link:
        faulty = FaultyTransport(link, rate=0.003, kinds=("drop", "flip", "insert"), seed=5)
        dut = Dut(faulty, LinkPolicy(timeout_s=0.25, retries=4, sync_timeout_s=0.2))
        outcome = _campaign(dut, 12, seed=4, size=int(np.prod(lab.bundle.x.shape[1:])),
                            reference=lambda x: table[int(x[0]) + 128])
    assert sum(faulty.faults.values()) >= 3 and dut.stats["retries"] > 0, (faulty.faults, dut.stats)
    assert outcome["correct"] >= 8, (outcome, faulty.faults, dut.stats)
    assert lab.idle()


def test_ser2net_killed_mid_run_fails_the_job_and_releases_the_place(lab, tmp_path, capsys):
    """The lab host's ser2net dies while the job holds lab-b: no wrong result is accepted (every output the
    job got is bit-exact, the verdict is fail or an error), and the place is released."""
    bundle = bundle_from_tflite(lab.bundle.tflite, tmp_path / "many", samples=400)
    out = tmp_path / "p"
    rows = out / "results.jsonl"

    def kill_after_some_rows() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if rows.is_file() and len(rows.read_text().splitlines()) >= 20:
                lab.b_ser2net.kill()
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_after_some_rows, daemon=True)
    killer.start()
    try:
        code = main(["profile", str(bundle.path), "--lab-file", str(lab.lab_file), "--targets", str(lab.targets),
                     "--samples", "all", "-o", str(out), "--lab", "lab-b"])
        killer.join(timeout=60)
        assert lab.b_ser2net.poll() is not None, "ser2net was not killed mid-run"
        assert code in (1, 2), capsys.readouterr()
        done = [json.loads(x) for x in rows.read_text().splitlines()]
        assert 20 <= len(done) < 400 and all(r["max_lsb_diff"] == 0 for r in done)
        if code == 1:
            rep = json.loads((out / "report.json").read_text())
            assert rep["device_error"] and any(c["verdict"] == "fail" for c in rep["checks"])
        assert lab.idle()
    finally:
        stop_process(lab.b_ser2net)
        lab.b_ser2net, _ = start_ser2net(lab.b_pty, lab.d, port=lab.b_port)


def test_no_coordinator_is_one_clear_error(lab, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LG_COORDINATOR", f"127.0.0.1:{free_port()}")
    with pytest.raises(EdgetkError) as e:
        with lease("desk=a", load_lab(lab.lab_file), wait_s=1):
            pass
    assert "no labgrid coordinator answers" in str(e.value) and "labgrid-coordinator" in e.value.fix


SUITE = """
import pytest
from toolkit.hil.bundle import load_bundle
from toolkit.runtimes import run_tflm

@pytest.fixture(scope="session")
def hil_bundle():
    return load_bundle({bundle!r})

def test_exact_on_the_lab_board(dut, hil_bundle):
    reference = run_tflm(hil_bundle.tflite, hil_bundle.x).reshape(len(hil_bundle.x), -1)
    for x, ref in zip(hil_bundle.x, reference):
        assert (dut.infer(x).reshape(-1) == ref).all()
"""


def test_pytest_plugin_runs_on_a_lab_place_and_releases_it(lab, tmp_path):
    """pytest --hil-lab lab-b: the `dut` is the place's board (target from the lab file), released at the end."""
    (tmp_path / "test_s.py").write_text(SUITE.format(bundle=str(lab.bundle.path)))
    junit = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_s.py"),
                           "--hil-lab", "lab-b", "--hil-lab-file", str(lab.lab_file), f"--junitxml={junit}"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "EDGETK_TARGETS": str(lab.targets)})
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    case = next(ET.parse(junit).getroot().iter("testcase"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert case.get("name") == "test_exact_on_the_lab_board[lab-board]" and props["hil_lab_place"] == "lab-b", props
    assert props["hil_ran_on"] == "lab-board"
    assert lab.idle()


@pytest.mark.parametrize("place,sig", [("lab-a", signal.SIGINT), ("lab-b", signal.SIGTERM), ("lab-a", signal.SIGKILL)],
                         ids=["ctrl-c", "sigterm", "sigkill"])
def test_an_interrupted_job_releases_its_place(lab, tmp_path, place, sig):
    """Ctrl-C (SIGINT) or a cancelled CI job (SIGTERM) mid-run: the job stops with 130 and lets its place go;
    SIGKILLed, its labgrid client process (a session of its own) sees its stdin close and lets the place go."""
    bundle = bundle_from_tflite(lab.bundle.tflite, tmp_path / "many", samples=1000)
    job = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "profile", str(bundle.path), "--lab", place,
                            "--lab-file", str(lab.lab_file), "--targets", str(lab.targets), "--samples", "all",
                            "-o", str(tmp_path / "p")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=REPO)
    try:
        rows, deadline = tmp_path / "p" / "results.jsonl", time.monotonic() + 90
        while not (rows.is_file() and rows.read_text().count("\n") >= 5):  # mid-run: samples are coming back
            if job.poll() is not None or time.monotonic() > deadline:
                stop_process(job)
                pytest.fail(f"the job did not get going: {job.communicate(timeout=10)[1][-2000:]}")
            time.sleep(0.05)
        job.send_signal(sig)
        _, err = job.communicate(timeout=60)
        if sig == signal.SIGKILL:
            assert job.returncode == -signal.SIGKILL
            deadline = time.monotonic() + 30
            while not lab.idle():
                assert time.monotonic() < deadline, "a SIGKILLed job's place is still held after 30 s"
                time.sleep(0.5)
            return
        assert job.returncode == 130 and "interrupted" in err, (job.returncode, err[-2000:])
        assert f"lab place {place} let go" in err, err[-2000:]
        assert lab.idle()
    finally:
        stop_process(job)


def test_lab_file_and_filters_are_parsed_purely(tmp_path):
    lab = parse_lab('[lab]\ncoordinator = "lab:1"\nwait_s = 5\n[places.p1]\ntarget = "t1"\n'
                    '[places.p2]\ntags = { board = "t2" }\nurl_options = "ign_set_control"\n', env={})
    assert lab.coordinator == "lab:1" and lab.wait_s == 5 and lab.place("p2").url_options == "ign_set_control"
    assert parse_lab('[lab]\ncoordinator = "lab:1"\n', env={"LG_COORDINATOR": "x:2"}).coordinator == "x:2"
    assert lab_filter("board=t3", lab) == {"board": "t3"} and lab_filter("p1", lab) == {"name": "p1"}
    assert [lab_target(s, lab, None) for s in ("p1", "p2", "board=t3")] == ["t1", "t2", "t3"]
    assert lab_target("desk=a", lab, "t9") == "t9"
    for bad, said in [(("desk=a", None), "which target"), (("Board=x", "t"), "lowercase key")]:
        with pytest.raises(EdgetkError, match=said):
            lab_target(bad[0], lab, bad[1])
    with pytest.raises(EdgetkError, match="wait_s"):
        parse_lab("[lab]\nwait_s = -1\n", env={})
    places = {"a": {"tags": {"board": "x", "desk": "1"}, "acquired": "h/u", "reservation": None},
              "b": {"tags": {"board": "x"}, "acquired": None, "reservation": "T"}}
    assert matching(places, {"board": "x"}) == ["a", "b"] and matching(places, {"name": "b"}) == ["b"]
    err = str(busy_error({"board": "x"}, places, 3, "c:1"))
    assert "within 3 s (held: a by h/u, b reserved (T))" in err and "labgrid-client -x c:1" in err
    assert serial_params([("PowerPort", {}), ("NetworkSerialPort", {"host": "h", "port": 7})])["protocol"] == "rfc2217"
    assert serial_url({"host": "h", "port": 7, "protocol": "rfc2217"}, "ign_set_control") == \
        "rfc2217://h:7?ign_set_control"
    with pytest.raises(EdgetkError, match="not RFC 2217"):
        serial_url({"host": "h", "port": 7, "protocol": "raw"})
    example = load_lab(REPO / "hil" / "lab.toml")
    assert example.place("desk-1-nucleo").target == "nucleo-l4r5zi" and example.wait_s == 600
