"""Our firmware as the official MLCommons Tiny runner sees it (mlcommons/tiny benchmark/runner).

What the runner does, as read from its sources (device_under_test.py, serial_device.py, script.py,
main.py, tests_performance.yaml) and re-implemented here — none of its code is copied:
- serial_device: pyserial at the DUT's baud with a 0.1 s read timeout; a thread reads ONE byte at a
  time and decodes it, drops '\\r' and NUL, and queues a line at each '\\n'; a command is written as
  `<cmd>%` and its reply is every non-empty line up to the first one containing `m-ready`, each line
  waited for at most 5 s (else the runner raises "No response to command").
- main/device_under_test: after opening, `name` (regex `^m-(name)-dut-\\[([^]]+)]$`), then `profile`
  (regex `^m-(model|profile)-\\[([^]]+)]$`), each tried up to 3 times; the model key then selects the
  test script from tests_*.yaml, whose keys are ad01, ic01, kws01, vww01 and sww01.
- script/device_under_test: `download` = `db load N` then `db <hex>` commands of 31 bytes (62 hex
  digits, 26 with a power board); `infer N W` with W explicit; the reply's laps `^m-lap-us-([0-9]+)$`
  (first = start, last = end; throughput = N / elapsed) and results `^m-results-\\[([^]]+)\\]$`
  (one line, comma-separated floats).
"""
from __future__ import annotations

import queue
import re
import threading
import time

import numpy as np
import pytest

from conftest import require_tool
from toolkit.hil.adapters import make_target
from toolkit.hil.mlperf import resolve_key
from toolkit.hil.runner import c_library, firmware_spec
from toolkit.hil.source import ModelSource, open_bundle
from toolkit.targets import get_target

KWS = "mlperf_tiny/benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite"
KWS_INPUT = "mlperf_tiny/benchmark/reference_submissions/keyword_spotting/kws_input.npy"
TOOLS = {"qemu-m4": ("arm-none-eabi-gcc", "qemu-system-arm"), "host-sim": ("gcc",)}

RUNNER_KEYS = {"ad01", "ic01", "kws01", "vww01", "sww01"}  # the test scripts in tests_performance.yaml
NAME_RE = re.compile(r"^m-(name)-dut-\[([^]]+)]$")
PROFILE_RE = re.compile(r"^m-(model|profile)-\[([^]]+)]$")
LAP_RE = re.compile(r"^m-lap-us-([0-9]+)$")
RESULTS_RE = re.compile(r"^m-results-\[([^]]+)\]$")
CHUNK = 31            # bytes per `db` command (no power board)
LINE_TIMEOUT_S = 5.0  # the runner's per-line wait


class RunnerLink:
    """The runner's serial behaviour: byte-at-a-time reader thread, lines at '\\n', replies up to m-ready."""

    def __init__(self, url: str, baud: int = 115200) -> None:
        import serial

        self.port = serial.serial_for_url(url, baudrate=baud, timeout=0.1)
        self.lines: queue.Queue[str] = queue.Queue()
        self.raw = bytearray()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        msg = ""
        while self.running:
            b = self.port.read(1)
            self.raw += b
            ch = b.decode()  # the runner decodes each byte alone: a non-ASCII byte would kill its thread
            if ch and ch not in "\n\r\0":
                msg += ch
            elif ch == "\n":
                self.lines.put(msg)
                msg = ""

    def send(self, cmd: str) -> list[str]:
        """Write `cmd%`; collect the non-empty lines through the first containing m-ready."""
        self.port.write(f"{cmd}%".encode())
        out = []
        while True:
            try:
                line = self.lines.get(timeout=LINE_TIMEOUT_S)
            except queue.Empty:
                raise AssertionError(f"the runner would stop: no response to command {cmd!r} (got {out})") from None
            if line:
                out.append(line)
            if "m-ready" in line:
                return out

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.port.close()


def _retrieve(link: RunnerLink, cmd: str, pattern: re.Pattern[str]) -> dict[str, str]:
    """name/profile as the runner gets them: up to 3 tries, the regex applied to every reply line."""
    for _ in range(3):
        found = {m.group(1): m.group(2) for ln in link.send(cmd) if (m := pattern.match(ln))}
        if found:
            return found
    raise AssertionError(f"the runner would not retrieve {cmd!r}")


def booted(url: str, spec) -> None:
    """Wait until the firmware has booted and answers, as a board does long before the runner opens its port.

    The runner never flushes its input: a boot banner that arrives after it opened the port is read as the
    reply to its first command, and every later reply is then read one command late.
    """
    from toolkit.hil.dut import Dut
    from toolkit.hil.transport import LinkSettings, Transport

    t = Transport(url, LinkSettings.from_spec(spec.connection)).open()
    try:
        Dut(t).sync()
    finally:
        t.close()


@pytest.fixture(scope="module")
def kws_bundle(external, tmp_path_factory):
    return open_bundle(ModelSource(external / KWS, inputs=external / KWS_INPUT,
                                   cache=tmp_path_factory.mktemp("bundles")))


@pytest.mark.parametrize("name", ["qemu-m4", "host-sim"])
def test_official_runner_performance_sequence(name, kws_bundle, tmp_path):
    """name, profile (kws01), db load + 31-byte chunks, infer 10 1, results: every reply parses as the runner parses it."""
    from toolkit.runtimes import run_tflm

    for tool in TOOLS[name]:
        require_tool(tool)
    key = resolve_key(kws_bundle)
    assert (key.key, key.source) == ("kws01", "bundle manifest (mlperf_key)")
    spec = firmware_spec(get_target(name), key)
    target = make_target(spec)
    target.build(c_library(kws_bundle, tmp_path), tmp_path)
    url = target.start()
    booted(url, spec)
    link = RunnerLink(url, spec.connection.baud)
    try:
        time.sleep(0.5)  # the runner waits (2 s) after opening before `name`
        assert _retrieve(link, "name", NAME_RE)["name"] == f"edgetk {name}"
        prof = _retrieve(link, "profile", PROFILE_RE)
        assert prof == {"profile": "ULPMark for tinyML Firmware V0.0.1", "model": "kws01"}
        assert prof["model"] in RUNNER_KEYS  # main.py: Script(test_script.get(model)) finds the KWS script

        x = kws_bundle.x[0].tobytes()
        assert len(x) == 490
        load = link.send(f"db load {len(x)}")
        assert load == [f"m-[Expecting {len(x)} bytes]", "m-ready"]
        replies = [link.send(f"db {x[i:i + CHUNK].hex()}") for i in range(0, len(x), CHUNK)]
        assert len(replies) == 16 and all(r == ["m-ready"] for r in replies[:-1])
        assert replies[-1] == ["m-load-done", "m-ready"]

        infer = link.send("infer 10 1")
        laps = [int(m.group(1)) for ln in infer if (m := LAP_RE.match(ln))]
        results = [m.group(1) for ln in infer if (m := RESULTS_RE.match(ln))]
        assert len(laps) == 2 and laps[1] > laps[0], infer  # the runner's start_time / end_time
        assert len(results) == 1 and not any(ln.startswith("e-[") for ln in infer), infer
        got = [float(v) for v in results[0].split(",") if v.strip()]

        q = kws_bundle.io("output")
        want = (run_tflm(kws_bundle.tflite, kws_bundle.x[:1])[0].reshape(-1).astype(np.float64)
                - q["zero_point"]) * q["scale"]
        assert len(got) == 12
        np.testing.assert_allclose(got, want, atol=5e-4)  # printed with 3 decimals
        assert int(np.argmax(got)) == int(np.argmax(want))

        again = [m.group(1) for ln in link.send("results") if (m := RESULTS_RE.match(ln))]
        assert again == results
        link.raw.decode("ascii")  # every byte the runner would read is ASCII
    finally:
        link.close()
        target.stop()
