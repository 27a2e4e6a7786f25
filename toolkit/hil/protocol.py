"""The device protocol, host side, as pure functions over bytes: split, check, parse.

MLPerf Tiny DUT replies are lines ending in CRLF, closed by `m-ready`; errors are `e-[...]`.
edgetk's own commands (info, mem, bload, run, and rload, rrun on firmware with a frontend) close their
reply with `m-sum-<crc32>` over every reply byte before that line, so a flipped, dropped or inserted
byte is detected, never accepted.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from toolkit.errors import EdgetkError

READY = b"m-ready\r\n"
BOOT_MARK = "m-init-done"
_SUM = re.compile(rb"m-sum-([0-9a-f]{8})\r\n$")
_TAGGED = re.compile(r"^m-([a-z0-9-]+?)-\[(.*)\]$")
_NUMBER = re.compile(r"^m-([a-z-]+?)-(-?[0-9a-f]+)$")
_LAP = re.compile(r"^m-lap-us-([0-9]+)$")
_NAME = re.compile(r"^m-(name)-dut-\[([^]]+)]$")


class LinkError(EdgetkError):
    """A reply that cannot be trusted (timeout, bad checksum, garbage): retried by the runner."""


class DeviceError(EdgetkError):
    """The device answered with an error `e-[...]`."""


class DeviceResetError(EdgetkError):
    """The device rebooted in the middle of a run (its boot banner appeared inside a reply)."""


@dataclass(frozen=True)
class Reply:
    """One reply: its lines (without m-sum and m-ready) and the raw bytes it came from."""

    lines: tuple[str, ...]
    raw: bytes
    checked: bool

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(ln[3:-1] for ln in self.lines if ln.startswith("e-[") and ln.endswith("]"))

    def values(self) -> dict[str, str]:
        """`m-key-value` and `m-key-[value]` lines as a dict (last one wins)."""
        out: dict[str, str] = {}
        for ln in self.lines:
            m = _TAGGED.match(ln) or _NUMBER.match(ln)
            if m:
                out[m.group(1)] = m.group(2)
        return out


def split_reply(buf: bytes) -> tuple[bytes | None, bytes]:
    """The first complete reply in buf (through `m-ready\\r\\n`) and the bytes after it."""
    i = buf.find(READY)
    if i < 0:
        return None, buf
    end = i + len(READY)
    return buf[:end], buf[end:]


def parse_reply(raw: bytes, *, checked: bool) -> Reply:
    """Check and split one reply; raise LinkError for a bad checksum, DeviceResetError on a reboot."""
    body = raw[: -len(READY)] if raw.endswith(READY) else raw
    if b"\r\n" + BOOT_MARK.encode() + b"\r\n" in b"\r\n" + body:
        raise DeviceResetError("the device rebooted during the command (boot banner in the reply)",
                               fix="check power and the reset line (DTR/RTS policy in the target "
                               "TOML), then run again; inputs uploaded before the reset are lost")
    if checked:
        m = _SUM.search(body)
        if m is None:
            raise LinkError(f"reply without its checksum line: {_preview(raw)}")
        body = body[: m.start()]
        if zlib.crc32(body) != int(m.group(1), 16):
            raise LinkError(f"reply checksum mismatch (corrupted on the link): {_preview(raw)}")
    text = body.decode("ascii", errors="replace")
    lines = tuple(ln for ln in text.split("\r\n") if ln)
    return Reply(lines=lines, raw=raw, checked=checked)


def _preview(raw: bytes, n: int = 80) -> str:
    return repr(raw[:n]) + ("..." if len(raw) > n else "")


def looks_like_garbage(raw: bytes) -> bool:
    """True when received bytes are mostly not printable ASCII (typical of a wrong baud rate)."""
    if len(raw) < 4:
        return False
    printable = sum(32 <= b < 127 or b in (10, 13) for b in raw)
    return printable / len(raw) < 0.8 or b"m-" not in raw


@dataclass(frozen=True)
class DeviceInfo:
    """The `info` reply: what the firmware runs and how it measures time."""

    protocol: int
    board: str
    sha256: str
    input_size: int
    output_size: int
    arena_bytes: int
    macs: int
    timer: str
    tick_hz: int
    has_cycles: bool
    frontend: str = ""     # the frontend type compiled in (m-info-frontend-[..]), "" without one
    raw_size: int = 0      # bytes of one raw window (rload), 0 without a frontend


def _need(reply: Reply, keys: tuple[str, ...]) -> dict[str, str]:
    v = reply.values()
    missing = [k for k in keys if k not in v]
    if reply.errors:
        raise DeviceError(f"device error: {'; '.join(reply.errors)}")
    if missing:
        raise LinkError(f"reply lacks {', '.join(missing)}: {_preview(reply.raw)}")
    return v


def parse_info(reply: Reply) -> DeviceInfo:
    """DeviceInfo from an `info` reply."""
    v = _need(reply, ("info-protocol", "info-board", "info-sha256", "info-in", "info-out",
                      "info-arena", "info-macs", "info-timer", "info-tick-hz", "info-cycles"))
    return DeviceInfo(protocol=int(v["info-protocol"]), board=v["info-board"], sha256=v["info-sha256"],
                      input_size=int(v["info-in"]), output_size=int(v["info-out"]),
                      arena_bytes=int(v["info-arena"]), macs=int(v["info-macs"]), timer=v["info-timer"],
                      tick_hz=int(v["info-tick-hz"]), has_cycles=v["info-cycles"] == "1",
                      frontend=v.get("info-frontend", ""), raw_size=int(v.get("info-raw", "0")))


@dataclass(frozen=True)
class MemInfo:
    """The `mem` reply."""

    arena_bytes: int
    stack_size: int
    stack_high_water: int


def parse_mem(reply: Reply) -> MemInfo:
    """MemInfo from a `mem` reply."""
    v = _need(reply, ("mem-arena", "mem-stack-size", "mem-stack-hwm"))
    return MemInfo(int(v["mem-arena"]), int(v["mem-stack-size"]), int(v["mem-stack-hwm"]))


@dataclass(frozen=True)
class RunResult:
    """The `run N W` reply: timing of N inferences and the output of the last one."""

    runs: int
    ticks: int
    cycles: int
    stack_high_water: int
    status: int
    input_crc: int
    output: bytes


def _hex_block(reply: Reply, v: dict[str, str], name: str, size: int) -> bytes:
    """The bytes of the `m-<name>-<hex>` lines, checked against `m-<name>-crc-` and the expected size."""
    head, crc_head = f"m-{name}-", f"m-{name}-crc-"
    hexdata = "".join(ln[len(head):] for ln in reply.lines if ln.startswith(head) and not ln.startswith(crc_head))
    try:
        data = bytes.fromhex(hexdata)
    except ValueError as e:
        raise LinkError(f"{name} is not hex: {hexdata[:40]!r}") from e
    if len(data) != size or zlib.crc32(data) != int(v[f"{name}-crc"], 16):
        raise LinkError(f"{name} of {len(data)} bytes fails its CRC (expected {size} bytes)")
    return data


def parse_run(reply: Reply, *, output_size: int) -> RunResult:
    """RunResult from a `run` reply; the output's own CRC and length are checked."""
    v = _need(reply, ("run-n", "ticks", "cycles", "stack", "status", "in-crc", "out-crc"))
    out = _hex_block(reply, v, "out", output_size)
    if int(v["status"]) != 0:
        raise DeviceError(f"edgetk_invoke returned {v['status']} on the device",
                          fix="the generated model failed; rebuild the firmware from a fresh codegen")
    return RunResult(runs=int(v["run-n"]), ticks=int(v["ticks"]), cycles=int(v["cycles"]),
                     stack_high_water=int(v["stack"]), status=int(v["status"]),
                     input_crc=int(v["in-crc"], 16), output=out)


@dataclass(frozen=True)
class RawRunResult:
    """The `rrun N W` reply: frontend and network timing of N raw inferences, the features and the output."""

    runs: int
    frontend_ticks: int
    frontend_cycles: int
    network_ticks: int
    network_cycles: int
    stack_high_water: int
    status: int
    raw_crc: int
    features: bytes
    features_crc: int
    output: bytes


def parse_rrun(reply: Reply, *, features_size: int, output_size: int) -> RawRunResult:
    """RawRunResult from an `rrun` reply; the features' and the output's own CRCs and lengths are checked."""
    v = _need(reply, ("rrun-n", "fe-ticks", "fe-cycles", "net-ticks", "net-cycles", "stack", "status", "raw-crc",
                      "feat-crc", "out-crc"))
    feat = _hex_block(reply, v, "feat", features_size)
    out = _hex_block(reply, v, "out", output_size)
    if int(v["status"]) != 0:
        raise DeviceError(f"the frontend or the network returned {v['status']} on the device",
                          fix="the generated library failed; rebuild the firmware from a fresh codegen")
    return RawRunResult(runs=int(v["rrun-n"]), frontend_ticks=int(v["fe-ticks"]), frontend_cycles=int(v["fe-cycles"]),
                        network_ticks=int(v["net-ticks"]), network_cycles=int(v["net-cycles"]),
                        stack_high_water=int(v["stack"]), status=int(v["status"]), raw_crc=int(v["raw-crc"], 16),
                        features=feat, features_crc=int(v["feat-crc"], 16), output=out)


NO_FRONTEND = "no frontend in this build"


def parse_bload(reply: Reply, *, crc: int, cmd: str = "bload") -> None:
    """Check a `bload` (or `rload`) reply: the device's CRC of what it received equals ours."""
    v = reply.values()
    if NO_FRONTEND in reply.errors:
        raise DeviceError(f"the firmware has no frontend: it cannot take raw samples ({cmd})",
                          fix="build the firmware from a bundle exported with a [frontend] (its c/ or frontend.json)")
    if reply.errors or v.get(f"{cmd}-crc") != f"{crc:08x}" or "m-load-done" not in reply.lines:
        raise LinkError(f"binary upload not confirmed: {'; '.join(reply.errors) or _preview(reply.raw)}")


def parse_name(reply: Reply) -> str:
    """The DUT name from a `name` reply (MLPerf runner regex)."""
    for ln in reply.lines:
        m = _NAME.match(ln)
        if m:
            return m.group(2)
    raise LinkError(f"no m-name-dut line in {_preview(reply.raw)}")


@dataclass(frozen=True)
class InferResult:
    """The MLPerf `infer N W` reply: microseconds per inference and the dequantized results."""

    runs: int
    us_per_inference: float
    results: tuple[float, ...]


def parse_infer(reply: Reply) -> InferResult:
    """InferResult from an MLPerf `infer` reply (latency = (t1 - t0) / N)."""
    if reply.errors:
        raise DeviceError(f"device error: {'; '.join(reply.errors)}")
    laps = [int(m.group(1)) for ln in reply.lines if (m := _LAP.match(ln))]
    start = [ln for ln in reply.lines if ln.startswith("m-infer-start-")]
    res = "".join(ln.split("-[", 1)[1] if ln.startswith("m-results-[") else ln[len("m-results-cont-"):]
                  for ln in reply.lines if ln.startswith("m-results-"))
    if len(laps) < 2 or not start or not res.endswith("]"):
        raise LinkError(f"incomplete infer reply: {_preview(reply.raw)}")
    runs = int(start[0].rsplit("-", 1)[1])
    values = tuple(float(x) for x in res[:-1].split(",") if x)
    return InferResult(runs=runs, us_per_inference=(laps[-1] - laps[-2]) / runs, results=values)


def hex_upload_commands(data: bytes, chunk: int = 31) -> list[str]:
    """The MLPerf upload: `db load N` then `db <hex>` chunks of 31 bytes, as its runner sends them."""
    cmds = [f"db load {len(data)}%"]
    cmds += [f"db {data[i:i + chunk].hex()}%" for i in range(0, len(data), chunk)]
    return cmds


def bload_command(data: bytes, cmd: str = "bload") -> str:
    """Our binary upload header: `bload N CRC32%` (or `rload` for raw samples), followed by the bytes."""
    return f"{cmd} {len(data)} {zlib.crc32(data):08x}%"
