"""The host-side protocol parser on transcripts recorded from the real firmware (qemu-m4)."""
from __future__ import annotations

import zlib

import pytest

from toolkit.hil import protocol as P

# Recorded from firmware_stubs on QEMU mps2-an386 (stand-in model), byte for byte.
INFO = (b"m-info-protocol-1\r\nm-info-board-[qemu-m4]\r\n"
        b"m-info-sha256-[14363759ca825369d9f8476d15735e2873e7b937f13ef28794846b036094d2f9]\r\n"
        b"m-info-in-16\r\nm-info-out-4\r\nm-info-arena-0\r\nm-info-macs-64\r\nm-info-timer-[systick-icount]\r\n"
        b"m-info-tick-hz-25000000\r\nm-info-cycles-0\r\nm-sum-2c37e486\r\nm-ready\r\n")
RUN = (b"m-run-n-100\r\nm-ticks-1251\r\nm-cycles-0\r\nm-stack-192\r\nm-status-0\r\nm-in-crc-cecee288\r\n"
       b"m-out-f507050f\r\nm-out-crc-787bc6d8\r\nm-sum-52d3fb06\r\nm-ready\r\n")
MEM = b"m-mem-arena-0\r\nm-mem-stack-size-32768\r\nm-mem-stack-hwm-192\r\nm-sum-1256a538\r\nm-ready\r\n"
BLOAD = b"m-bload-ready\r\nm-bload-crc-cecee288\r\nm-load-done\r\nm-sum-31197d40\r\nm-ready\r\n"
INFER = (b"m-warmup-start-1\r\nm-warmup-done\r\nm-infer-start-10\r\nm-lap-us-2383\r\nm-lap-us-2388\r\n"
         b"m-infer-done\r\nm-results-[-1.600,0.200,0.000,1.000]\r\nm-ready\r\n")
BOOT = b"m-timestamp-mode-performance\r\nm-lap-us-0\r\nm-init-done\r\nm-ready\r\n"


def test_info_reply_parses_and_checks_its_sum():
    info = P.parse_info(P.parse_reply(INFO, checked=True))
    assert (info.board, info.input_size, info.output_size, info.tick_hz) == ("qemu-m4", 16, 4, 25_000_000)
    assert info.sha256.startswith("14363759") and not info.has_cycles


def test_run_reply_gives_output_and_timing():
    r = P.parse_run(P.parse_reply(RUN, checked=True), output_size=4)
    assert (r.runs, r.ticks, r.stack_high_water, r.output) == (100, 1251, 192, bytes.fromhex("f507050f"))
    assert r.input_crc == zlib.crc32(bytes(range(16)))


def test_mem_bload_and_mlperf_infer_replies():
    assert P.parse_mem(P.parse_reply(MEM, checked=True)).stack_high_water == 192
    bload = P.parse_reply(BLOAD, checked=True)
    assert P.parse_bload(bload, crc=zlib.crc32(bytes(range(16)))) is None  # the device received what we sent
    with pytest.raises(P.LinkError, match="not confirmed"):
        P.parse_bload(bload, crc=zlib.crc32(bytes(range(1, 17))))  # a CRC other than ours: refused
    inf = P.parse_infer(P.parse_reply(INFER, checked=False))
    assert inf.runs == 10 and inf.us_per_inference == 0.5 and inf.results == (-1.6, 0.2, 0.0, 1.0)


@pytest.mark.parametrize("raw", [INFO, RUN, MEM, BLOAD])
def test_every_single_bit_flip_is_rejected(raw):
    body_end = raw.index(b"m-ready")
    for i in range(body_end):
        for bit in (0x01, 0x20, 0x80):
            bad = raw[:i] + bytes([raw[i] ^ bit]) + raw[i + 1:]
            with pytest.raises(P.LinkError):
                P.parse_reply(bad, checked=True)


@pytest.mark.parametrize("raw", [INFO, RUN])
def test_dropped_and_inserted_bytes_are_rejected(raw):
    body_end = raw.index(b"m-ready")
    for i in range(0, body_end, 3):
        with pytest.raises(P.LinkError):
            P.parse_reply(raw[:i] + raw[i + 1:], checked=True)
        with pytest.raises(P.LinkError):
            P.parse_reply(raw[:i] + b"\x00" + raw[i:], checked=True)


def test_output_crc_is_checked_even_when_the_sum_is_recomputed():
    body = RUN.replace(b"m-out-f507050f", b"m-out-f507050e").split(b"m-sum-")[0]
    forged = body + b"m-sum-%08x\r\nm-ready\r\n" % zlib.crc32(body)
    with pytest.raises(P.LinkError, match="CRC"):
        P.parse_run(P.parse_reply(forged, checked=True), output_size=4)


def test_boot_banner_inside_a_reply_is_a_device_reset():
    with pytest.raises(P.DeviceResetError, match="rebooted"):
        P.parse_reply(b"m-run-n-1\r\n" + BOOT, checked=False)


def test_split_reply_and_device_errors():
    raw, rest = P.split_reply(b"e-[Unknown command: foo]\r\nm-ready\r\nm-name")
    assert rest == b"m-name"
    reply = P.parse_reply(raw, checked=False)
    assert reply.errors == ("Unknown command: foo",)
    with pytest.raises(P.LinkError, match="checksum"):
        P.parse_reply(raw, checked=True)
    assert P.split_reply(b"m-lap-us-1\r\n") == (None, b"m-lap-us-1\r\n")


def test_upload_encodings():
    data = bytes(range(100))
    cmds = P.hex_upload_commands(data)
    assert cmds[0] == "db load 100%" and len(cmds) == 1 + 4 and all(len(c) <= 80 for c in cmds)
    assert P.bload_command(data) == f"bload 100 {zlib.crc32(data):08x}%"


def test_garbage_detection():
    assert P.looks_like_garbage(bytes([0xF8, 0x80, 0x00, 0xFE, 0x78, 0x80] * 5))
    assert not P.looks_like_garbage(INFO)
