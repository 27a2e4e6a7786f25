"""Issue #14, item 4 (the serial link), each defect reproduced first: commands corrupted on the wire are retried
(the campaign saw `run` aborted by a DeviceError with its retries unused), replies with non-decimal, negative or
zero fields are the protocol's own error (never ValueError/ZeroDivisionError), the firmware bounds N and W, stops a
long run at a byte on the link, and does not let control bytes swallow a command. On the host simulator and QEMU,
with the stand-in model and frontend (toolkit.hil.fuzz_firmware.standin_library), and through a transport that
corrupts chosen commands."""
from __future__ import annotations

import re
import zlib
from typing import Callable

import numpy as np
import pytest

from test_firmware_devices import Running, standin_reference
from toolkit.errors import EdgetkError
from toolkit.hil import protocol as P
from toolkit.hil.dut import Dut, LinkPolicy
from toolkit.hil.fuzz_firmware import standin_features, standin_library
from toolkit.hil.transport import Transport


def forge(body: bytes) -> bytes:
    """A reply as the device would send these lines (a valid m-sum over them)."""
    return body + b"m-sum-%08x\r\nm-ready\r\n" % zlib.crc32(body)


RUN = (b"m-cmd-[run 2 1]\r\nm-run-n-2\r\nm-ticks-27\r\nm-cycles-0\r\nm-stack-204\r\nm-status-0\r\n"
       b"m-in-crc-cecee288\r\nm-out-f507050f\r\nm-out-crc-787bc6d8\r\n")
INFO = (b"m-cmd-[info]\r\nm-info-protocol-2\r\nm-info-board-[qemu-m4]\r\nm-info-sha256-[1436]\r\nm-info-in-16\r\n"
        b"m-info-out-4\r\nm-info-arena-0\r\nm-info-macs-64\r\nm-info-timer-[systick-icount]\r\n"
        b"m-info-tick-hz-25000000\r\nm-info-cycles-0\r\nm-info-frontend-[standin]\r\nm-info-raw-64\r\n")
MEM = b"m-cmd-[mem]\r\nm-mem-arena-0\r\nm-mem-stack-size-32768\r\nm-mem-stack-hwm-184\r\n"
RRUN = (b"m-cmd-[rrun 1 0]\r\nm-rrun-n-1\r\nm-fe-ticks-5\r\nm-fe-cycles-0\r\nm-net-ticks-14\r\nm-net-cycles-0\r\n"
        b"m-stack-204\r\nm-status-0\r\nm-raw-crc-d324a7d4\r\nm-feat-0e2a4662ff9bb7d3ef0a26425efb97b3\r\n"
        b"m-feat-crc-8ac55827\r\nm-out-d548f435\r\nm-out-crc-6824aa55\r\n")
INFER = (b"m-warmup-start-1\r\nm-warmup-done\r\nm-infer-start-3\r\nm-lap-us-2589\r\nm-lap-us-2591\r\n"
         b"m-infer-done\r\nm-results-[-4.800,6.700,-1.700,4.800]\r\nm-ready\r\n")
PARSE = {"run": lambda r: P.parse_run(r, output_size=4), "info": P.parse_info, "mem": P.parse_mem,
         "rrun": lambda r: P.parse_rrun(r, features_size=16, output_size=4)}


def _with(body: bytes, key: bytes, value: bytes) -> bytes:
    return re.sub(rb"(m-" + re.escape(key) + rb"-)[^\r]*", lambda m: m.group(1) + value, body, count=1)


@pytest.mark.parametrize("kind, body, key, value", [
    ("run", RUN, b"ticks", b"-27"), ("run", RUN, b"ticks", b"1a"), ("run", RUN, b"run-n", b"0"),
    ("run", RUN, b"run-n", b"ff"), ("run", RUN, b"stack", b"-1"), ("run", RUN, b"status", b"x"),
    ("run", RUN, b"in-crc", b"-cecee28"), ("run", RUN, b"out-crc", b"787bc6d8787bc6d8"),
    ("info", INFO, b"info-in", b"1a"), ("info", INFO, b"info-tick-hz", b"0"), ("info", INFO, b"info-cycles", b"2"),
    ("info", INFO, b"info-raw", b"-64"), ("info", INFO, b"info-protocol", b"-2"), ("mem", MEM, b"mem-arena", b"-1"),
    ("mem", MEM, b"mem-stack-hwm", b"ab"), ("rrun", RRUN, b"fe-ticks", b"-5"), ("rrun", RRUN, b"raw-crc", b"xyz"),
    ("rrun", RRUN, b"net-cycles", b"1e3"), ("rrun", RRUN, b"rrun-n", b"10001"), ("run", RUN, b"out", b"f5 07050f"),
])
def test_fields_that_are_not_protocol_numbers_are_link_errors(kind, body, key, value):
    """Before: ValueError on non-decimal fields, negative ticks/stack accepted, run-n 0 accepted."""
    reply = P.parse_reply(forge(_with(body, key, value)), checked=True)
    with pytest.raises(P.LinkError):
        PARSE[kind](reply)
    assert PARSE[kind](P.parse_reply(forge(body), checked=True)) is not None  # the recorded reply parses


@pytest.mark.parametrize("bad", [b"m-infer-start-0", b"m-infer-start-1a", b"m-infer-start-", b"m-results-[1.0x0]",
                                 b"m-results-[4.800,,1.000]", b"m-results-[]", b"m-lap-us-1e3", b"m-infer-done-"])
def test_corrupted_mlperf_infer_replies_are_link_errors(bad):
    """Before: m-infer-start-0 was a ZeroDivisionError, a corrupted number a ValueError."""
    lines = INFER.split(b"\r\n")
    key = bad.split(b"-[")[0] if b"-[" in bad else bad.rsplit(b"-", 1)[0]
    i = next(i for i, ln in enumerate(lines) if ln.startswith(key))
    lines[i] = bad
    with pytest.raises(P.LinkError):
        P.parse_infer(P.parse_reply(b"\r\n".join(lines), checked=False))


def test_infer_latency_across_the_32_bit_microsecond_wrap():
    r = P.parse_infer(P.parse_reply(INFER.replace(b"2589", b"4294967290").replace(b"2591", b"5"), checked=False))
    assert r.runs == 3 and r.us_per_inference == pytest.approx(11 / 3)


def _reply(*lines: bytes, checked: bool = True) -> P.Reply:
    body = b"".join(ln + b"\r\n" for ln in lines)
    return P.parse_reply(forge(body) if checked else body + b"m-ready\r\n", checked=checked)


@pytest.mark.parametrize("reply, sent, error", [
    (_reply(b"e-[run expects: run N W, N 1..10000, W 0..10000]"), "run 1 0%", P.LinkError),  # protocol 1: no echo
    (_reply(b"e-[run expects: run N W, N 1..10000, W 0..10000]"), "run 0 0%", P.DeviceError),
    (_reply(b"m-cmd-[run 1 x]", b"e-[run expects: run N W]"), "run 1 0%", P.LinkError),
    (_reply(b"m-cmd-[run 0 0]", b"e-[run expects: run N W]"), "run 0 0%", P.DeviceError),
    (_reply(b"m-cmd-[run 1 0]", b"e-[no input loaded]"), "rrun 1 0%", P.LinkError),
    (_reply(b"m-cmd-[rrun 1 0]", b"e-[no raw input loaded]"), "rrun 1 0%", P.DeviceError),
    (_reply(b"m-cmd-[run 1 0]", b"e-[run aborted by a byte on the link after 3 of 10]"), "run 1 0%", P.LinkError),
    (_reply(b"e-[Unknown command: rn]", checked=False), "run 1 0%", P.LinkError),
    (_reply(b"e-[Unknown command: bogus]", checked=False), "bogus%", P.DeviceError),
    (_reply(b"e-[bload size must be 16]"), "bload 16 cecee288%", P.LinkError),
    (_reply(b"e-[bload size must be 16]"), "bload 15 0%", P.DeviceError),
    (_reply(b"e-[db load size out of range, max 16]", checked=False), "db load 16%", P.LinkError),
    (_reply(b"e-[Invalid hex digit 'zz']", checked=False), "db 0011%", P.LinkError),
    (_reply(b"e-[Invalid hex digit 'zz']", checked=False), "db zz%", P.DeviceError),
    (_reply(b"e-[infer expects: infer N W]", checked=False), "infer 2 1%", P.LinkError),
    (_reply(b"e-[Command too long]", checked=False), "name%", P.LinkError),
    (_reply(b"e-[no results yet]", checked=False), "results%", P.DeviceError),
])
def test_a_refusal_of_what_the_link_garbled_is_retried_a_refusal_of_what_was_sent_is_not(reply, sent, error):
    with pytest.raises(error):
        P.check_reply(reply, sent)


def test_well_formed_mirrors_the_firmware_grammar():
    good = ["name%", "info%", "run 1 0%", "run 10000 10000%", "rrun 3%", "infer%", "bload 16 cecee288%",
            "rload 64 D324A7D4%", "db load 16%", "db 00ff%", "db print%", "%", "  run  2  1%"]
    bad = ["run 0 0%", "run 10001 0%", "infer 1 4294967295%", "run 1 x%", "bload 16%", "bload 16 123456789%",
           "db 0%", "db%", "bogus%", "run 1 0\x00%", "x" * 80 + "%", "run 1 0 %%"]
    assert [P.well_formed(c) for c in good] == [True] * len(good)
    assert [P.well_formed(c) for c in bad] == [False] * len(bad)


# ---- the firmware --------------------------------------------------------------------------------------------

X = np.arange(-8, 8, dtype=np.int8)
RAW = np.arange(-16, 16, dtype=np.int16) * 997


@pytest.fixture(scope="module", params=["host-sim", "qemu-m4"])
def dev(request, tmp_path_factory):
    lib = standin_library(tmp_path_factory.mktemp("lib"), frontend=True)
    d = Running(request.param, lib, tmp_path_factory.mktemp(request.param))
    d.dut.policy = LinkPolicy(timeout_s=5, retries=3, sync_timeout_s=0.3)
    yield d
    d.close()


def _raw(dev: Running, data: bytes, timeout: float = 10.0) -> P.Reply:
    dev.transport.reset_input()
    dev.dut._send(data)
    return P.parse_reply(dev.dut._read_until((P.READY,), timeout), checked=False)


def test_commands_are_echoed_and_info_says_protocol_2(dev):
    info = dev.dut.info()
    assert info.protocol == 2 and info.frontend == "standin" and info.raw_size == 64
    reply = dev.dut.command("mem%")
    assert reply.echo == "mem" and reply.lines[0] == "m-cmd-[mem]"


def test_control_bytes_left_in_the_buffer_do_not_swallow_the_next_command(dev):
    """Before: a NUL left in the command buffer made `name` a bare m-ready."""
    assert _raw(dev, b"\x00name%").lines == (f"m-name-dut-[edgetk {dev.spec.name}]",)
    assert _raw(dev, b"\x01\x7f\x1bname%").lines == (f"m-name-dut-[edgetk {dev.spec.name}]",)
    dev.dut.upload(X.tobytes())
    reply = _raw(dev, b"run\x001\t0%")  # control bytes separate words like spaces, and the echo says so
    assert reply.echo == "run 1 0" and "m-run-n-1" in reply.lines
    assert _raw(dev, b"n\xe1me%").errors == ("Unknown command: n?me",)  # high bytes: '?', replies stay ASCII


@pytest.mark.parametrize("cmd", [b"infer 1 4294967295%", b"run 10001 0%", b"rrun 1 10001%", b"infer 0 0%"])
def test_runs_and_warmups_are_bounded(dev, cmd):
    """Before: `infer 1 4294967295` was accepted (about 4e9 inferences that nothing could stop)."""
    dev.dut.upload(X.tobytes())
    reply = _raw(dev, cmd)
    name = cmd.split()[0].decode()
    assert reply.errors == (f"{name} expects: {name} N W, N 1..{P.MAX_RUNS}, W 0..{P.MAX_RUNS}",), reply.lines
    sent = len(dev.dut.transcript.entries)
    with pytest.raises(EdgetkError, match="N must be 1..10000"):
        dev.dut.run(P.MAX_RUNS + 1, 0, output_size=4)
    assert len(dev.dut.transcript.entries) == sent, "refused before anything was sent"


@pytest.mark.parametrize("cmd", [b"run 10000 10000%", b"infer 10000 10000%", b"rrun 10000 10000%"])
def test_a_byte_on_the_link_stops_a_long_run(dev, cmd):
    """Before: nothing could interrupt a run; the host's resync bytes now stop it between two inferences."""
    dev.dut.upload(X.tobytes())
    dev.dut.upload_raw(RAW.astype("<i2").tobytes())
    name = cmd.split()[0].decode()
    reply = _raw(dev, cmd + b"x")
    assert len(reply.errors) == 1 and re.fullmatch(rf"{name} aborted by a byte on the link after \d+ of 10000",
                                                   reply.errors[0]), reply.lines
    assert int(reply.errors[0].split()[-3]) < 10000
    with pytest.raises(P.LinkError, match="did not reach the device intact"):
        P.check_errors(reply, cmd.decode())
    dev.dut.upload(X.tobytes())  # the device goes on serving
    r = dev.dut.run(2, 1, output_size=4)
    assert np.frombuffer(r.output, np.int8).tolist() == standin_reference(X).tolist()


def test_raw_path_of_the_standin_frontend(dev):
    dev.dut.upload_raw(RAW.astype("<i2").tobytes())
    r = dev.dut.run_raw(2, 1, features_size=16, output_size=4)
    feat = standin_features(RAW.astype("<i2").tobytes())
    assert r.features == feat and r.output == standin_reference(np.frombuffer(feat, np.int8)).tobytes()


# ---- commands corrupted on the wire ------------------------------------------------------------------------


class Corrupting(Transport):
    """A real transport whose first write starting with `prefix` is changed by `corrupt` (then it passes bytes)."""

    def __init__(self, inner: Transport, prefix: bytes, corrupt: Callable[[bytes], bytes]) -> None:
        super().__init__(inner.url, inner.settings)
        self.inner, self.prefix, self.corrupt, self.done = inner, prefix, corrupt, False

    def write(self, data: bytes) -> None:
        if not self.done and data.startswith(self.prefix):
            self.done, data = True, self.corrupt(data)
        self.inner.write(data)

    def read(self, timeout: float) -> bytes:
        return self.inner.read(timeout)

    def reset_input(self) -> None:
        self.inner.reset_input()


def _run(d: Dut) -> bytes:
    d.upload(X.tobytes())
    return d.run(1, 0, output_size=4).output


def _rrun(d: Dut) -> bytes:
    d.upload_raw(RAW.astype("<i2").tobytes())
    return d.run_raw(1, 0, features_size=16, output_size=4).output


def _infer(d: Dut) -> bytes:
    d.upload_hex(X.tobytes())
    return np.round(np.array(d.infer(2, 1).results) / 0.1 + 5).astype(np.int8).tobytes()


CASES = {  # (what to corrupt, how, the operation whose result must come out right)
    "run: a digit garbled (the campaign's 'after 0 retries')": (b"run", lambda b: b.replace(b" 0%", b" x%"), _run),
    "run: became another valid run": (b"run", lambda b: b.replace(b" 0%", b" 7%"), _run),
    "run: its % lost": (b"run", lambda b: b[:-1], _run),
    "run: became rrun": (b"run", lambda b: b"r" + b, _run),
    "rrun: became run": (b"rrun", lambda b: b[1:], _rrun),
    "rrun: a digit garbled": (b"rrun", lambda b: b.replace(b" 1", b" \x8a"), _rrun),
    "bload: size changed": (b"bload", lambda b: b.replace(b"bload 16", b"bload 17"), _run),
    "bload: its CRC changed": (b"bload", lambda b: b.replace(b"bload 16 ", b"bload 16 1"), _run),
    "rload: became bload": (b"rload", lambda b: b"b" + b[1:], _rrun),
    "info: garbled": (b"info", lambda b: b"inf\x80%", lambda d: d.info().raw_size.to_bytes(2, "little")),
    "infer: warm-up garbled": (b"infer", lambda b: b.replace(b" 1%", b" \xb1%"), _infer),
    "db: a hex digit garbled": (b"db f", lambda b: b[:4] + b"z" + b[5:], _infer),
    "db load: garbled": (b"db load", lambda b: b.replace(b"16", b"61"), _infer),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_command_corrupted_on_the_wire_is_retried(dev, case):
    prefix, corrupt, op = CASES[case]
    clean = op(dev.dut)
    d = Dut(Corrupting(dev.transport, prefix, corrupt), LinkPolicy(timeout_s=1.0, retries=3, sync_timeout_s=0.3))
    assert op(d) == clean and d.transport.done
    assert d.stats["retries"] >= 1, d.transcript.text()
    dev.dut.sync()


def test_random_faults_on_every_command_are_retried_never_refused(dev):
    """bload+run, rload+rrun, info, mem and the MLPerf upload over a link that drops, flips and inserts bytes both
    ways: every result is right or the retry budget was spent; no DeviceError from a command the link garbled."""
    from toolkit.hil.faults import FaultyTransport

    faulty = FaultyTransport(dev.transport, rate=0.003, seed=11)
    d = Dut(faulty, LinkPolicy(timeout_s=0.5 if dev.spec.kind == "qemu" else 0.25, retries=4, sync_timeout_s=0.25))
    rng, outcome = np.random.default_rng(5), {"right": 0, "budget spent": 0}
    for i in range(24):
        x = rng.integers(-128, 128, 16, dtype=np.int8)
        raw = rng.integers(-32768, 32768, 32, dtype=np.int16).astype("<i2").tobytes()
        try:
            op = i % 4
            if op == 0:
                d.upload(x.tobytes())
                assert d.run(1, 0, output_size=4).output == standin_reference(x).tobytes()
            elif op == 1:
                d.upload_raw(raw)
                r = d.run_raw(1, 0, features_size=16, output_size=4)
                assert r.features == standin_features(raw)
                assert r.output == standin_reference(np.frombuffer(r.features, np.int8)).tobytes()
            elif op == 2:
                assert (d.info().raw_size, d.mem().arena_bytes) == (64, 0)
            else:
                d.upload_hex(x.tobytes())  # read back with `db print` and compared inside, retried whole
            outcome["right"] += 1
        except P.LinkError as e:
            assert "no valid reply after 5 attempts" in str(e), e
            outcome["budget spent"] += 1
    assert sum(faulty.faults.values()) >= 10 and d.stats["retries"] >= 3, (faulty.faults, d.stats)
    assert outcome["right"] >= 18, (outcome, faulty.faults, d.stats)
    dev.dut.sync()
