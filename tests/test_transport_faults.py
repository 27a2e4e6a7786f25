"""A fault-injecting transport (drop, flip, insert bytes; close mid-reply; garbage) between the real
runner and the real firmware: the runner retries or fails with a clear error, and never accepts a
wrong result. Plus the other link failures a user meets: no such port, nothing answering, model hash
mismatch, device reset mid-run."""
from __future__ import annotations

import random
import socket
import threading
from collections import Counter

import numpy as np
import pytest

from conftest import require_tool
from test_firmware_devices import Running, standin_reference
from toolkit.errors import EdgetkError
from toolkit.hil import ModelMismatchError, profile
from toolkit.hil.bundle import bundle_from_tflite
from toolkit.hil.dut import Dut, LinkPolicy, NothingAnsweringError, WrongBaudError
from toolkit.hil.protocol import DeviceResetError, LinkError
from toolkit.hil.transport import LinkClosedError, Transport
from toolkit.paths import repo_dir

KWS = "mlperf_tiny/benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite"
HELLO = "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite"


class FaultyTransport(Transport):
    """Wraps a real transport and corrupts the byte stream: per-byte drop / flip / insert at `rate`,
    a fixed garbling of every received byte (what a wrong baud rate looks like), or closing the link
    after `close_after_rx` received bytes."""

    def __init__(self, inner: Transport, *, rate: float = 0.0, kinds: tuple[str, ...] = ("drop", "flip", "insert"),
                 seed: int = 0, garble: bool = False, close_after_rx: int | None = None) -> None:
        super().__init__(inner.url, inner.settings)
        self.inner, self.rate, self.kinds, self.garble = inner, rate, kinds, garble
        self.rng = random.Random(seed)
        self.close_after_rx, self.rx = close_after_rx, 0
        self.faults: Counter[str] = Counter()

    def _mangle(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            kind = self.rng.choice(self.kinds) if self.rng.random() < self.rate else ""
            self.faults[kind] += bool(kind)
            if kind == "flip":
                out.append(b ^ (1 << self.rng.randrange(8)))
            elif kind == "insert":
                out += bytes([self.rng.randrange(256), b])
            elif kind != "drop":
                out.append(b)
        return bytes(out)

    def write(self, data: bytes) -> None:
        self.inner.write(self._mangle(data))

    def read(self, timeout: float) -> bytes:
        data = self.inner.read(timeout)
        if self.close_after_rx is not None and self.rx + len(data) >= self.close_after_rx:
            data = data[: max(0, self.close_after_rx - self.rx)]
            self.inner.close()
        self.rx += len(data)
        if self.garble:
            return bytes(((b * 37) ^ 0xA5) & 0xFF for b in data)
        return self._mangle(data)

    def reset_input(self) -> None:
        self.inner.reset_input()

    def close(self) -> None:
        self.inner.close()


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


def test_model_hash_mismatch_refuses_to_profile(external, tmp_path):
    require_tool("gcc")
    bundle = bundle_from_tflite(external / HELLO, tmp_path / "bundle", samples=2)
    (bundle.path / "c").symlink_to(repo_dir("firmware_stubs") / "testmodel")  # C of another model
    with pytest.raises(ModelMismatchError, match="refusing to profile"):
        profile(bundle.path, "host-sim", samples=2, out_dir=tmp_path / "out", build_dir=tmp_path / "build")


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
