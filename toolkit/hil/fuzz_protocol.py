"""The host's protocol parser under mutation (issue #14): recorded replies of every type, corrupted as a link
would corrupt them ("wire": bytes and lines changed, the device's checksum kept) or rebuilt with a fresh
checksum ("forged": malformed fields behind a valid m-sum), through the path the client takes
(parse_reply, check_reply, the reply's parser).

Properties: every input gives a result or one of the protocol's errors (LinkError, DeviceError,
DeviceResetError), never another exception; a wire-corrupted checksummed reply is never accepted with a
result other than the recorded one; a forged reply that is accepted holds only values the protocol allows.
The campaign runs through toolkit.fuzz.run_campaign: input i of seed s is reproducible from (s, i).
"""
from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolkit.fuzz import Finding, Report, mutate_bytes, run_campaign
from toolkit.hil import protocol as P

PROTOCOL_ERRORS = (P.LinkError, P.DeviceError, P.DeviceResetError)


@dataclass(frozen=True)
class Seed:
    """One recorded reply: what kind it is, the command it answered, its bytes and what its parser needs."""

    kind: str
    sent: str
    raw: bytes
    checked: bool = True
    sizes: tuple[int, ...] = ()      # output size (run), features and output sizes (rrun), crc (bload/rload)


_X_CRC, _RAW_CRC = 0xCECEE288, 0xD324A7D4
_FEAT = "0e2a4662ff9bb7d3ef0a26425efb97b3"
# Recorded from the firmware (protocol 2: m-cmd echo) with the stand-in model and frontend
# (toolkit.hil.fuzz_firmware.standin_library) on qemu-m4 and host-sim, and (protocol 1) from the
# stand-in on qemu-m4 as in tests/test_protocol_parser.py, byte for byte.
SEEDS: tuple[Seed, ...] = (
    Seed("info", "info%", b"m-cmd-[info]\r\nm-info-protocol-2\r\nm-info-board-[qemu-m4]\r\nm-info-sha256-[14363759ca825"
         b"369d9f8476d15735e2873e7b937f13ef28794846b036094d2f9]\r\nm-info-in-16\r\nm-info-out-4\r\nm-info-arena-0\r\n"
         b"m-info-macs-64\r\nm-info-timer-[systick-icount]\r\nm-info-tick-hz-25000000\r\nm-info-cycles-0\r\n"
         b"m-info-frontend-[standin]\r\nm-info-raw-64\r\nm-sum-c14c07b6\r\nm-ready\r\n"),
    Seed("info", "info%", b"m-cmd-[info]\r\nm-info-protocol-2\r\nm-info-board-[host-sim]\r\nm-info-sha256-[1436375"
         b"9ca825369d9f8476d15735e2873e7b937f13ef28794846b036094d2f9]\r\nm-info-in-16\r\nm-info-out-4\r\nm-info-arena-0"
         b"\r\nm-info-macs-64\r\nm-info-timer-[clock_gettime]\r\nm-info-tick-hz-1000000000\r\nm-info-cycles-0\r\n"
         b"m-info-frontend-[standin]\r\nm-info-raw-64\r\nm-sum-5b761f2b\r\nm-ready\r\n"),
    Seed("info", "info%", b"m-info-protocol-1\r\nm-info-board-[qemu-m4]\r\nm-info-sha256-[14363759ca825369d9f8476d1"
         b"5735e2873e7b937f13ef28794846b036094d2f9]\r\nm-info-in-16\r\nm-info-out-4\r\nm-info-arena-0\r\nm-info-macs-64"
         b"\r\nm-info-timer-[systick-icount]\r\nm-info-tick-hz-25000000\r\nm-info-cycles-0\r\nm-sum-2c37e486\r\n"
         b"m-ready\r\n"),
    Seed("mem", "mem%", b"m-cmd-[mem]\r\nm-mem-arena-0\r\nm-mem-stack-size-32768\r\nm-mem-stack-hwm-184\r\n"
         b"m-sum-be84c67a\r\nm-ready\r\n"),
    Seed("mem", "mem%", b"m-mem-arena-0\r\nm-mem-stack-size-32768\r\nm-mem-stack-hwm-192\r\nm-sum-1256a538\r\n"
         b"m-ready\r\n"),
    Seed("run", "run 2 1%", b"m-cmd-[run 2 1]\r\nm-run-n-2\r\nm-ticks-27\r\nm-cycles-0\r\nm-stack-204\r\n"
         b"m-status-0\r\nm-in-crc-cecee288\r\nm-out-f507050f\r\nm-out-crc-787bc6d8\r\nm-sum-7a030b49\r\nm-ready\r\n",
         sizes=(4,)),
    Seed("run", "run 2 1%", b"m-cmd-[run 2 1]\r\nm-run-n-2\r\nm-ticks-1282\r\nm-cycles-0\r\nm-stack-0\r\n"
         b"m-status-0\r\nm-in-crc-cecee288\r\nm-out-f507050f\r\nm-out-crc-787bc6d8\r\nm-sum-6d90e6ca\r\nm-ready\r\n",
         sizes=(4,)),
    Seed("run", "run 100 0%", b"m-run-n-100\r\nm-ticks-1251\r\nm-cycles-0\r\nm-stack-192\r\nm-status-0\r\n"
         b"m-in-crc-cecee288\r\nm-out-f507050f\r\nm-out-crc-787bc6d8\r\nm-sum-52d3fb06\r\nm-ready\r\n", sizes=(4,)),
    Seed("run", "run 1 0%", b"m-cmd-[run 1 0]\r\ne-[no input loaded]\r\nm-sum-8ddd3ded\r\nm-ready\r\n", sizes=(4,)),
    Seed("rrun", "rrun 1 0%", b"m-cmd-[rrun 1 0]\r\nm-rrun-n-1\r\nm-fe-ticks-5\r\nm-fe-cycles-0\r\nm-net-ticks-14\r\n"
         b"m-net-cycles-0\r\nm-stack-204\r\nm-status-0\r\nm-raw-crc-d324a7d4\r\nm-feat-" + _FEAT.encode() +
         b"\r\nm-feat-crc-8ac55827\r\nm-out-d548f435\r\nm-out-crc-6824aa55\r\nm-sum-a49b75ed\r\nm-ready\r\n",
         sizes=(16, 4)),
    Seed("rrun", "rrun 1 0%", b"m-cmd-[rrun 1 0]\r\nm-rrun-n-1\r\nm-fe-ticks-270\r\nm-fe-cycles-0\r\nm-net-ticks-281"
         b"\r\nm-net-cycles-0\r\nm-stack-0\r\nm-status-0\r\nm-raw-crc-d324a7d4\r\nm-feat-" + _FEAT.encode() +
         b"\r\nm-feat-crc-8ac55827\r\nm-out-d548f435\r\nm-out-crc-6824aa55\r\nm-sum-032d1c12\r\nm-ready\r\n",
         sizes=(16, 4)),
    Seed("bload", "bload 16 cecee288%", b"m-cmd-[bload 16 cecee288]\r\nm-bload-ready\r\nm-bload-crc-cecee288\r\n"
         b"m-load-done\r\nm-sum-367a7d49\r\nm-ready\r\n", sizes=(_X_CRC,)),
    Seed("bload", "bload 16 cecee288%", b"m-bload-ready\r\nm-bload-crc-cecee288\r\nm-load-done\r\nm-sum-31197d40\r\n"
         b"m-ready\r\n", sizes=(_X_CRC,)),
    Seed("bload", "bload 15 00000000%", b"m-cmd-[bload 15 00000000]\r\ne-[bload size must be 16]\r\n"
         b"m-sum-083eaa41\r\nm-ready\r\n", sizes=(0,)),
    Seed("rload", "rload 64 d324a7d4%", b"m-cmd-[rload 64 d324a7d4]\r\nm-rload-ready\r\nm-rload-crc-d324a7d4\r\n"
         b"m-load-done\r\nm-sum-3ae66aae\r\nm-ready\r\n", sizes=(_RAW_CRC,)),
    Seed("infer", "infer 3 1%", b"m-warmup-start-1\r\nm-warmup-done\r\nm-infer-start-3\r\nm-lap-us-2589\r\n"
         b"m-lap-us-2591\r\nm-infer-done\r\nm-results-[-4.800,6.700,-1.700,4.800]\r\nm-ready\r\n", checked=False),
    Seed("infer", "infer 10 1%", b"m-warmup-start-1\r\nm-warmup-done\r\nm-infer-start-10\r\nm-lap-us-2383\r\n"
         b"m-lap-us-2388\r\nm-infer-done\r\nm-results-[-1.600,0.200,0.000,1.000]\r\nm-ready\r\n", checked=False),
    Seed("name", "name%", b"m-name-dut-[edgetk host-sim]\r\nm-ready\r\n", checked=False),
    Seed("name", "bogus%", b"e-[Unknown command: bogus]\r\nm-ready\r\n", checked=False),
    Seed("db_print", "db print%", b"m-buffer-0e-2a-46-62-ff-9b-b7-d3\r\nm-buffer-ef-0a-26-42-5e-fb-97-b3\r\n"
         b"m-ready\r\n", checked=False),
    Seed("run", "run 1 0%", b"m-timestamp-mode-performance\r\nm-lap-us-0\r\nm-init-done\r\nm-ready\r\n", sizes=(4,)),
)


def _printed(reply: P.Reply) -> bytes:
    from toolkit.hil.dut import Dut

    return Dut.printed(reply)


PARSERS: dict[str, Callable[[P.Reply, tuple[int, ...]], Any]] = {
    "info": lambda r, s: P.parse_info(r),
    "mem": lambda r, s: P.parse_mem(r),
    "run": lambda r, s: P.parse_run(r, output_size=s[0]),
    "rrun": lambda r, s: P.parse_rrun(r, features_size=s[0], output_size=s[1]),
    "bload": lambda r, s: P.parse_bload(r, crc=s[0]),
    "rload": lambda r, s: P.parse_bload(r, crc=s[0], cmd="rload"),
    "infer": lambda r, s: P.parse_infer(r),
    "name": lambda r, s: P.parse_name(r),
    "db_print": lambda r, s: _printed(r),
}


def client_parse(seed: Seed, raw: bytes) -> Any:
    """What the client does with these bytes as the reply to seed.sent: a result, or a protocol error."""
    reply = P.parse_reply(raw, checked=seed.checked)
    P.check_reply(reply, seed.sent)
    return PARSERS[seed.kind](reply, seed.sizes)


def _outcome(seed: Seed, raw: bytes) -> tuple[str, Any]:
    try:
        return "accepted", client_parse(seed, raw)
    except PROTOCOL_ERRORS as e:
        return "refused", type(e).__name__


_ORIGINAL: dict[int, tuple[str, Any]] = {}


def original(i: int) -> tuple[str, Any]:
    """The outcome of seed i unmutated (cached)."""
    if i not in _ORIGINAL:
        _ORIGINAL[i] = _outcome(SEEDS[i], SEEDS[i].raw)
    return _ORIGINAL[i]


# ---------------------------------------------------------------- mutations
_VALUES = (b"", b"-1", b"-0", b"0", b"1a", b"ff", b"99999999999999999999999", b"1e3", b" 1", b"+1", b"\xef\xbc\x91",
           b"\x00", b"nan", b"0x10", b"4294967296", b"10001", b"-2147483648", b"[", b"]", b"cecee288", b"CECEE288",
           b"\xff\xfe", b"inf", b"1.000", b"1,2", b"--", b"m-ready")
_LINES = (b"e-[no input loaded]", b"e-[run aborted by a byte on the link after 1 of 2]", b"e-[Unknown command: run]",
          b"m-init-done", b"m-timestamp-mode-performance", b"m-ready", b"m-cmd-[run 1 0]", b"m-cmd-[]",
          b"m-sum-00000000", b"m-results-[1.000,", b"m-infer-start-0", b"m-lap-us-4294967295", b"m-out-zz",
          b"m-out-f507050f", b"e-[", b"m-", b"", b"m-results-[nan,inf,-inf]")
_FIELD = re.compile(rb"^(m-[a-z-]+?-)(.*)$", re.S)


def _lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n")


def mutate_lines(rng: np.random.Generator, raw: bytes) -> bytes:
    """1-3 line-level changes: a field value replaced by a special one, a line dropped, duplicated, swapped,
    cut or inserted (errors, banners, echoes, bare m-ready), a stray CR or NUL."""
    lines = _lines(raw)
    for _ in range(int(rng.integers(1, 4))):
        i, what = int(rng.integers(len(lines))), int(rng.integers(8))
        m = _FIELD.match(lines[i])
        if what <= 1 and m:
            lines[i] = m.group(1) + _VALUES[int(rng.integers(len(_VALUES)))] * int(rng.integers(1, 3))
        elif what == 2 and len(lines) > 1:
            del lines[i]
        elif what == 3:
            lines.insert(i, lines[i])
        elif what == 4:
            j = int(rng.integers(len(lines)))
            lines[i], lines[j] = lines[j], lines[i]
        elif what == 5:
            lines[i] = lines[i][: int(rng.integers(len(lines[i]) + 1))]
        elif what == 6:
            lines.insert(i, _LINES[int(rng.integers(len(_LINES)))])
        else:
            pos = int(rng.integers(len(lines[i]) + 1))
            lines[i] = lines[i][:pos] + (b"\r", b"\x00", b"\n", b"]", b"-")[int(rng.integers(5))] + lines[i][pos:]
    return b"\r\n".join(lines)


def resum(raw: bytes) -> bytes:
    """The reply with its m-sum recomputed over the bytes before it (as if the device had sent these bytes)."""
    body = raw.split(b"m-ready\r\n")[0] if b"m-ready\r\n" in raw else raw
    at = body.rfind(b"m-sum-")
    body = body[:at] if at >= 0 else body
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b"m-sum-%08x\r\nm-ready\r\n" % zlib.crc32(body)


def encode(index: int, mode: str, raw: bytes) -> bytes:
    """A campaign input: `<seed index> <wire|forged>\\n` + the reply bytes."""
    return f"{index} {mode}\n".encode() + raw


def decode(data: bytes) -> tuple[int, str, bytes]:
    """(seed index, mode, reply bytes) of a campaign input."""
    head, _, raw = data.partition(b"\n")
    index, mode = head.decode().split(" ")
    return int(index), mode, raw


def seed_inputs() -> list[bytes]:
    """Every recorded reply as a campaign input (wire mode: as the device sent it)."""
    return [encode(i, "wire", s.raw) for i, s in enumerate(SEEDS)]


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    """Byte-level (toolkit.fuzz.mutate_bytes) or line-level changes; checksummed replies are forged (m-sum
    recomputed) half of the time, the others keep the device's checksum."""
    index, _, raw = decode(data)
    raw = mutate_bytes(rng, raw) if rng.random() < 0.4 else mutate_lines(rng, raw)
    forged = SEEDS[index].checked and rng.random() < 0.5
    return encode(index, "forged" if forged else "wire", resum(raw) if forged else raw)


# ---------------------------------------------------------------- the property
def _sane(result: Any, seed: Seed) -> None:
    """Values an accepted reply may hold, whatever bytes it came from."""
    if isinstance(result, P.DeviceInfo):
        ok = min(result.protocol, result.input_size, result.output_size, result.arena_bytes, result.macs,
                 result.raw_size) >= 0 and result.tick_hz > 0
    elif isinstance(result, P.MemInfo):
        ok = min(result.arena_bytes, result.stack_size, result.stack_high_water) >= 0
    elif isinstance(result, P.RunResult):
        ok = 1 <= result.runs <= P.MAX_RUNS and result.status == 0 and len(result.output) == seed.sizes[0] \
            and min(result.ticks, result.cycles, result.stack_high_water) >= 0
    elif isinstance(result, P.RawRunResult):
        ok = 1 <= result.runs <= P.MAX_RUNS and result.status == 0 and len(result.output) == seed.sizes[1] \
            and zlib.crc32(result.features) == result.features_crc and len(result.features) == seed.sizes[0] \
            and min(result.frontend_ticks, result.network_ticks, result.stack_high_water) >= 0
    elif isinstance(result, P.InferResult):
        ok = 1 <= result.runs <= P.MAX_RUNS and math.isfinite(result.us_per_inference) and \
            result.us_per_inference >= 0 and all(isinstance(v, float) for v in result.results)
    else:
        ok = result is None or isinstance(result, (str, bytes))
    if not ok:
        raise Finding("insane-result", repr(result)[:300])


def check(data: bytes) -> str:
    """One campaign input: "accepted" or "refused"; a Finding for a corrupted result accepted under the device's
    checksum or a value the protocol does not allow (any other exception escapes: a traceback)."""
    index, mode, raw = decode(data)
    seed = SEEDS[index]
    outcome, result = _outcome(seed, raw)
    if outcome == "accepted":
        _sane(result, seed)
        if seed.checked and mode == "wire" and (outcome, result) != original(index):
            raise Finding("corrupted-accepted", f"{seed.kind}: {result!r:.200} (recorded: {original(index)[1]!r:.200})")
    return outcome


def campaign(*, n: int | None = None, seconds: float | None = None, seed: int = 0, start: int = 0) -> Report:
    """A seeded campaign over every recorded reply (in process: the parser is pure Python)."""
    return run_campaign("protocol", seed_inputs(), mutate, check, n=n, seconds=seconds, seed=seed, start=start,
                        per_input_s=5.0)


def save_failures(rep: Report, out: str | Path) -> list[Path]:
    """Regenerate each failing input from (seed, index) and write it to out; returns the files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds, paths = seed_inputs(), []
    for f in rep.failures:
        rng = np.random.default_rng([rep.seed, f.index])
        data = mutate(rng, seeds[int(rng.integers(len(seeds)))])
        path = out / f"protocol-{rep.seed}-{f.index}-{f.kind}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths


def replay(path: str | Path) -> str:
    """Check one saved input again (a reproducer): its outcome, the finding, or the traceback's exception."""
    try:
        return check(Path(path).read_bytes())
    except Finding as e:
        return f"finding: {e}"
    except Exception as e:  # noqa: BLE001 - what the reproducer reproduces
        return f"traceback: {type(e).__name__}: {e}"
