"""A fault-injecting transport (drop, flip, insert bytes; close mid-reply; garbage) between the real
runner and the real firmware: the runner retries or fails with a clear error, and never accepts a
wrong result. Plus the other link failures a user meets: no such port, nothing answering, model hash
mismatch, device reset mid-run."""
from __future__ import annotations

import socket
import threading
from collections import Counter

import numpy as np
import pytest

from conftest import require_tool
from test_firmware_devices import Running, standin_reference
from toolkit.errors import EdgetkError
from toolkit.hil import ModelMismatchError
from toolkit.hil.bundle import bundle_from_tflite
from toolkit.hil.dut import Dut, LinkPolicy, NothingAnsweringError, WrongBaudError
from toolkit.hil.faults import FaultyTransport
from toolkit.hil.protocol import DeviceResetError, LinkError
from toolkit.hil.transport import LinkClosedError, Transport
from toolkit.paths import repo_dir

KWS = "mlperf_tiny/benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite"
HELLO = "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    dev = Running("host-sim", repo_dir("firmware_stubs") / "testmodel", tmp_path_factory.mktemp("host"))
    yield dev
    dev.close()


def _campaign(dut: Dut, n: int, seed: int, size: int, reference) -> Counter[str]:
    rng, outcome = np.random.default_rng(seed), Counter()
    for _ in range(n):
        x = rng.integers(-128, 128, size=size, dtype=np.int8)
        try:
            dut.upload(x.tobytes())
            out = np.frombuffer(dut.run(1, 0, output_size=len(reference(x))).output, np.int8)
        except (LinkError, EdgetkError) as e:
            assert str(e), "a failure must say why"
            outcome["clear error"] += 1
            continue
        assert np.array_equal(out, reference(x)), "the runner accepted a wrong result"
        outcome["correct"] += 1
    return outcome


@pytest.mark.parametrize("kinds", [("drop",), ("flip",), ("insert",), ("drop", "flip", "insert")])
def test_random_faults_never_yield_a_wrong_result(host, kinds):
    faulty = FaultyTransport(host.transport, rate=0.002, kinds=kinds, seed=len(kinds) * 7 + len(kinds[0]))
    dut = Dut(faulty, LinkPolicy(timeout_s=0.25, retries=4, sync_timeout_s=0.2))
    outcome = _campaign(dut, 40, seed=1, size=16, reference=standin_reference)
    assert sum(faulty.faults.values()) >= 5, f"too few faults injected to mean anything: {faulty.faults}"
    assert outcome["correct"] >= 30, (outcome, faulty.faults, dut.stats)
    assert dut.stats["retries"] > 0
    host.dut.sync()  # the link is usable again without faults


def test_link_closed_mid_reply_is_a_clear_error(tmp_path):
    dev = Running("host-sim", repo_dir("firmware_stubs") / "testmodel", tmp_path)
    try:
        dut = Dut(FaultyTransport(dev.transport, close_after_rx=40), LinkPolicy(timeout_s=1))
        with pytest.raises(LinkClosedError, match="closed"):
            dut.info()
    finally:
        dev.close()


def test_wrong_baud_garbage_is_named(host):
    dut = Dut(FaultyTransport(host.transport, garble=True), LinkPolicy(timeout_s=0.5, retries=1, sync_timeout_s=0.3))
    with pytest.raises(WrongBaudError, match="wrong baud rate"):
        dut.sync()
    host.dut.sync()


def test_nothing_answering_and_no_such_port():
    with socket.socket() as srv:  # a real TCP peer that accepts and stays silent
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        t = Transport(f"socket://127.0.0.1:{srv.getsockname()[1]}").open()
        try:
            with pytest.raises(NothingAnsweringError, match="nothing answers"):
                Dut(t, LinkPolicy(timeout_s=0.3, retries=0, sync_timeout_s=0.2)).sync()
        finally:
            t.close()
        port = srv.getsockname()[1]
    with pytest.raises(EdgetkError, match="no such serial port"):
        Transport("/dev/ttyEDGETK-NOPE").open()
    with pytest.raises(EdgetkError, match="nothing is listening"):
        Transport(f"socket://127.0.0.1:{port}").open()


def test_model_hash_mismatch_refuses_to_profile(host, external, tmp_path):
    """A device that runs another model (here the stand-in) than the bundle's is refused before anything is measured."""
    from toolkit.hil.runner import check_model

    bundle = bundle_from_tflite(external / HELLO, tmp_path / "bundle", samples=2)
    with pytest.raises(ModelMismatchError, match="refusing to profile"):
        check_model(host.dut, bundle)


def test_device_reset_mid_run_is_detected(external, tmp_path):
    from toolkit.codegen import generate

    lib = generate(external / KWS, tmp_path / "c").out_dir
    dev = Running("qemu-m4", lib, tmp_path / "build")
    try:
        dev.dut.upload(bytes(490))
        timer = threading.Timer(0.3, dev.target.reset)
        timer.start()
        with pytest.raises(DeviceResetError, match="rebooted"):
            dev.dut.run(200, 0, output_size=12, timeout=60)
        timer.join()
    finally:
        dev.close()


def test_short_soak_every_fault_is_retried_or_a_clear_error_never_a_wrong_result(tmp_path):
    """bench/link_soak.py in small: run and raw paths, byte faults both ways, stalls past the timeout, resets."""
    from toolkit.hil.soak import soak

    require_tool("gcc")
    base, rep = soak(tmp_path, n=80, rate=0.002, seed=3, delay_rate=0.004, reset_every=15, pool=16)
    assert base.correct == base.inferences == 16 and base.stats["retries"] == 0
    assert rep.wrong_accepted == 0 and rep.aborted_with_retries_left == 0, rep.summary()
    assert sum(rep.faults.values()) >= 30 and rep.faults["delay"] >= 1 and rep.resets >= 2, rep.summary()
    assert rep.stats["retries"] >= 10 and rep.reset_errors == rep.resets, rep.summary()  # a reset never gives a result
    assert rep.correct + sum(rep.errors.values()) == rep.inferences and rep.correct >= 0.8 * rep.inferences
