"""A board on the network: the host simulator's pseudo-terminal exported by a real ser2net (RFC 2217 on
127.0.0.1, started and stopped here), profiled as a board through `--port rfc2217://...`; link faults on top.

A pseudo-terminal has no modem lines: ser2net cannot set DTR/RTS on it and does not answer those requests, so
the URL carries pyserial's ?ign_set_control. Behind a real USB serial adapter ser2net answers them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import free_port, require_tool, start_ser2net, stop_process
from test_transport_faults import HELLO, _campaign
from toolkit.cli import main
from toolkit.errors import EdgetkError
from toolkit.hil.adapters import make_target
from toolkit.hil.bundle import bundle_from_tflite
from toolkit.hil.dut import Dut, LinkPolicy
from toolkit.hil.faults import FaultyTransport
from toolkit.hil.runner import c_library
from toolkit.hil.transport import Transport
from toolkit.runtimes import run_tflm
from toolkit.targets import get_target

LAB_BOARD = """name = "lab-board"
description = "a board on a lab host, reached through ser2net (RFC 2217)"
kind = "board"
core = "x86_64"
clock_hz = 0
flash_bytes = 0
ram_bytes = 0
runtime = "generated-c"

[build]
port = "host"
cc = "gcc"
cflags = ["-O2", "-D_XOPEN_SOURCE=600", "-D_DEFAULT_SOURCE"]
sources = ["ports/host/port.c"]

[connection]
url = ""
timeout_s = 5.0
"""


@pytest.fixture(scope="module")
def lab(external, tmp_path_factory):
    """The hello-world bundle's firmware on the host simulator, its pty exported by ser2net: (url, bundle)."""
    require_tool("gcc")
    require_tool("ser2net")
    d = tmp_path_factory.mktemp("lab")
    bundle = bundle_from_tflite(external / HELLO, d / "bundle", samples=4)
    spec = get_target("host-sim")
    sim = make_target(spec)
    sim.build(c_library(bundle, d / "build", spec), d / "build")
    try:
        proc, port = start_ser2net(sim.start(), d)
        try:
            yield f"rfc2217://127.0.0.1:{port}?ign_set_control", bundle
        finally:
            stop_process(proc)
    finally:
        sim.stop()


def test_board_profiled_through_rfc2217_is_bit_exact(lab, tmp_path, monkeypatch, capsys):
    url, bundle = lab
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "lab-board.toml").write_text(LAB_BOARD)
    out = tmp_path / "p"
    assert main(["profile", str(bundle.path), "--target", "lab-board", "--targets", str(tmp_path / "targets"),
                 "--port", url, "--samples", "4", "-o", str(out)]) == 0, capsys.readouterr()
    rep = json.loads((out / "report.json").read_text())
    assert rep["ran_on"] == "lab-board" and rep["fallbacks"] == [] and rep["samples"] == 4
    assert rep["fidelity"]["bit_exact"] and rep["fidelity"]["samples"] == 4
    tflm = next(c for c in rep["comparisons"] if c["reference"].startswith("TFLite-Micro"))
    assert tflm["max_lsb_diff"] == 0 and tflm["samples"] == 4
    assert rep["link"]["commands"] >= 4 and rep["link"]["retries"] == 0, rep["link"]


def test_link_faults_over_rfc2217_never_yield_a_wrong_result(lab):
    """Drops, flips and inserted bytes on the network link: retried or a clear error, never a wrong output."""
    url, bundle = lab
    xs = np.arange(-128, 128, dtype=np.int8).reshape(256, *bundle.x.shape[1:])
    table = run_tflm(bundle.tflite, xs).reshape(256, -1)
    with Transport(url) as link:
        faulty = FaultyTransport(link, rate=0.003, seed=3)
        dut = Dut(faulty, LinkPolicy(timeout_s=0.25, retries=4, sync_timeout_s=0.2))
        outcome = _campaign(dut, 12, seed=2, size=int(np.prod(bundle.x.shape[1:])),
                            reference=lambda x: table[int(x[0]) + 128])
        assert sum(faulty.faults.values()) >= 3, faulty.faults
        assert outcome["correct"] >= 8, (outcome, faulty.faults, dut.stats)
        assert dut.stats["retries"] > 0


def test_no_server_at_the_url_is_one_clear_error():
    with pytest.raises(EdgetkError) as e:
        Transport(f"rfc2217://127.0.0.1:{free_port()}").open()
    assert "no RFC 2217 serial server answers" in str(e.value) and "ser2net" in e.value.fix
