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


# Raw samples in (firmware built from an imu-motions bundle with its C frontend, qemu-m4), byte for byte:
# `info` with the frontend lines, `rload 1200 CRC` + 1200 bytes (test window 0), `rrun 1 0`, and the errors.
INFO_FE = (b"m-info-protocol-1\r\nm-info-board-[qemu-m4]\r\n"
           b"m-info-sha256-[1ed49cdb29acbdf27edcbd89fb1e231ccdd2108006dd20e8b778ef936e347baa]\r\n"
           b"m-info-in-600\r\nm-info-out-4\r\nm-info-arena-2400\r\nm-info-macs-304512\r\n"
           b"m-info-timer-[systick-icount]\r\nm-info-tick-hz-25000000\r\nm-info-cycles-0\r\n"
           b"m-info-frontend-[imu]\r\nm-info-raw-1200\r\nm-sum-fa16c252\r\nm-ready\r\n")
RLOAD = b"m-rload-ready\r\nm-rload-crc-4fca7e5a\r\nm-load-done\r\nm-sum-d8d86c1c\r\nm-ready\r\n"
RLOAD_BAD = b"m-rload-ready\r\nm-rload-crc-4fca7e5a\r\ne-[rload crc mismatch]\r\nm-sum-70258111\r\nm-ready\r\n"
RLOAD_SIZE = b"e-[rload size must be 1200]\r\nm-sum-dd8a86f0\r\nm-ready\r\n"
RRUN_NONE = b"e-[no raw input loaded]\r\nm-sum-4cbfefb8\r\nm-ready\r\n"
NO_FRONTEND = b"e-[no frontend in this build]\r\nm-sum-30b19255\r\nm-ready\r\n"  # testmodel firmware, rload and rrun
FEAT_HEX = (
    "f10a07f90101f10a07f9010123db9a8051d301eace5427f2f4f502e6eefef4f5", "02e6eefef30a08fbfd05f70b1303f703f30915fdff02f30913fefd01f60a1200",
    "ff00f60a1200ff00f5090e010101f5090e010101f5080cff0001f5080cff0001", "f4080cff0001f3080d010001f3080efe0000f4080c000100f4070a000000f307",
    "0c000100f4080d010001f4080c010101f4070c010101f4080b020102f4080900", "0102f30909ff0102f30909ff0102f4080afe0001f4080aff0001f3070b000100",
    "f40709000000f3080aff0100f30807fe0100f30708ff0000f4060900ff00f405", "0b010001f40609000101f40909ff0002f4090a000001f30809000100f3060700",
    "0100f30607000100f30608010001f30708000001f4080800ff01f4070900ff01", "f4060a000001f4060aff0001f40609010101f40708fe0101f40708000101f307",
    "08000101f40608000100f40608000100f40608000100f40709000000f4070800", "0000f40709010100f40608000100f40708000000f30609000000f40709ff0001",
    "f40609000001f40609000101f30608000101f30608000101f4060a000001f307", "0aff0101f3070aff0101f30706fd0200f4060afeff00f4060afeff00f4060afe",
    "0001f4060afe0001f40508000101f40608ff0101f50809fe0001f40709fd0001", "f3060afd0101f50509fe0100f40509fe0101f40608000100f30507000101f407",
    "09000001f4060a010000f3060b020001f40708020101f30708010001f4060901", "0001f4070a000001f4070a000001f30709000101f40708000101f40708000001",
    "f40708000001f3060aff0001f3070a000001f3070a000001")
RRUN = (b"m-rrun-n-1\r\nm-fe-ticks-327\r\nm-fe-cycles-0\r\nm-net-ticks-42063\r\nm-net-cycles-0\r\nm-stack-464\r\n"
        b"m-status-0\r\nm-raw-crc-4fca7e5a\r\n" + b"".join(b"m-feat-%s\r\n" % h.encode() for h in FEAT_HEX)
        + b"m-feat-crc-cfb99c1b\r\nm-out-0fb1c8b6\r\nm-out-crc-9c9a1092\r\nm-sum-dacb96a4\r\nm-ready\r\n")


def test_info_of_a_firmware_with_a_frontend():
    info = P.parse_info(P.parse_reply(INFO_FE, checked=True))
    assert (info.frontend, info.raw_size, info.input_size, info.output_size) == ("imu", 1200, 600, 4)
    plain = P.parse_info(P.parse_reply(INFO, checked=True))  # older firmware / no frontend: no such lines
    assert (plain.frontend, plain.raw_size) == ("", 0)


def test_rrun_reply_gives_features_output_and_both_timings():
    r = P.parse_rrun(P.parse_reply(RRUN, checked=True), features_size=600, output_size=4)
    assert (r.runs, r.frontend_ticks, r.network_ticks, r.stack_high_water, r.status) == (1, 327, 42063, 464, 0)
    assert r.features == bytes.fromhex("".join(FEAT_HEX)) and zlib.crc32(r.features) == r.features_crc == 0xCFB99C1B
    assert r.output == bytes.fromhex("0fb1c8b6") and r.raw_crc == 0x4FCA7E5A
    with pytest.raises(P.LinkError, match="feat of 600 bytes fails its CRC .expected 601"):
        P.parse_rrun(P.parse_reply(RRUN, checked=True), features_size=601, output_size=4)


def test_rrun_feature_crc_is_checked_even_when_the_sum_is_recomputed():
    body = RRUN.replace(b"m-feat-f10a07", b"m-feat-f10a08").split(b"m-sum-")[0]
    forged = body + b"m-sum-%08x\r\nm-ready\r\n" % zlib.crc32(body)
    with pytest.raises(P.LinkError, match="feat of 600 bytes fails its CRC"):
        P.parse_rrun(P.parse_reply(forged, checked=True), features_size=600, output_size=4)
    dropped = RRUN.replace(b"m-feat-%s\r\n" % FEAT_HEX[3].encode(), b"").split(b"m-sum-")[0]
    forged = dropped + b"m-sum-%08x\r\nm-ready\r\n" % zlib.crc32(dropped)  # a whole line lost
    with pytest.raises(P.LinkError, match="feat of 568 bytes"):
        P.parse_rrun(P.parse_reply(forged, checked=True), features_size=600, output_size=4)


def test_rload_replies_and_errors():
    data_crc = 0x4FCA7E5A
    assert P.parse_bload(P.parse_reply(RLOAD, checked=True), crc=data_crc, cmd="rload") is None
    with pytest.raises(P.LinkError, match="rload crc mismatch"):  # the device got other bytes: retried
        P.parse_bload(P.parse_reply(RLOAD_BAD, checked=True), crc=data_crc, cmd="rload")
    with pytest.raises(P.LinkError, match="not confirmed"):  # its CRC is not ours
        P.parse_bload(P.parse_reply(RLOAD, checked=True), crc=data_crc ^ 1, cmd="rload")
    with pytest.raises(P.LinkError, match="rload size must be 1200"):
        P.parse_bload(P.parse_reply(RLOAD_SIZE, checked=True), crc=data_crc, cmd="rload")
    with pytest.raises(P.DeviceError, match="no frontend"):  # not a link fault: never retried
        P.parse_bload(P.parse_reply(NO_FRONTEND, checked=True), crc=data_crc, cmd="rload")
    with pytest.raises(P.DeviceError, match="no raw input loaded"):
        P.parse_rrun(P.parse_reply(RRUN_NONE, checked=True), features_size=600, output_size=4)
    data = bytes([1, 0, 255, 127])  # int16 little-endian 1, 32767
    assert P.bload_command(data, "rload") == f"rload 4 {zlib.crc32(data):08x}%"


@pytest.mark.parametrize("raw", [INFO_FE, RRUN, RLOAD, RLOAD_BAD, NO_FRONTEND])
def test_every_single_bit_flip_of_the_raw_replies_is_rejected(raw):
    body_end = raw.index(b"m-ready")
    for i in range(0, body_end, 2 if raw is RRUN else 1):
        bad = raw[:i] + bytes([raw[i] ^ 0x04]) + raw[i + 1:]
        with pytest.raises(P.LinkError):
            P.parse_reply(bad, checked=True)
