"""The device protocol, host side, as pure functions over bytes: split, check, parse.

MLPerf Tiny DUT replies are lines ending in CRLF, closed by `m-ready`; errors are `e-[...]`.
edgetk's own commands (info, mem, bload, run, and rload, rrun on firmware with a frontend) close their
reply with `m-sum-<crc32>` over every reply byte before that line, so a flipped, dropped or inserted
byte is detected, never accepted; since protocol 2 they open it with `m-cmd-[<the command as received>]`,
so a reply to a command corrupted on its way to the device is told apart from a real refusal.

Every parser returns its result or raises one of this module's errors: LinkError (the link garbled
something: the client retries), DeviceError (the device refused what was sent), DeviceResetError.
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
_LAP = re.compile(r"^m-lap-us-([0-9]{1,10})$")
_NAME = re.compile(r"^m-(name)-dut-\[([^]]+)]$")
_DEC = re.compile(r"^[0-9]{1,20}$")
_SIGNED = re.compile(r"^-?[0-9]{1,11}$")
_HEX32 = re.compile(r"^[0-9a-f]{8}$")
_HEXLINE = re.compile(r"^[0-9a-f]*$")
_START = re.compile(r"^m-infer-start-([0-9]{1,10})$")
_RESULT = re.compile(r"^-?(?:nan|inf|[0-9]{1,10}\.[0-9]{3}(?:e\+[0-9]{1,3})?)$")

MAX_RUNS = 10_000   # N and W of infer / run / rrun (firmware_stubs/runtime/dut.c EDGETK_MAX_RUNS)
CMD_MAX = 79        # characters of a command before its '%' (dut.c CMD_MAX - 1)


class LinkError(EdgetkError):
    """A reply that cannot be trusted (timeout, bad checksum, garbage): retried by the runner."""


class DeviceError(EdgetkError):
    """The device answered with an error `e-[...]`."""


class NoFrontendError(DeviceError):
    """The firmware was built without a frontend: it takes no raw samples (rload, rrun)."""


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

    @property
    def echo(self) -> str | None:
        """The command as the device received it (`m-cmd-[...]`, protocol 2), None in replies without one."""
        for ln in self.lines:
            if ln.startswith("m-cmd-[") and ln.endswith("]"):
                return ln[7:-1]
        return None

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


def _field(v: dict[str, str], key: str, pattern: re.Pattern[str] = _DEC, base: int = 10) -> int:
    """One numeric field, checked against its pattern (decimal >= 0 unless told): LinkError otherwise."""
    text = v[key]
    if not pattern.match(text):
        raise LinkError(f"m-{key} is not a {'checksum' if base == 16 else 'number'} of the protocol: {text[:24]!r}")
    return int(text, base)


def _hex32(v: dict[str, str], key: str) -> int:
    return _field(v, key, _HEX32, 16)


def parse_info(reply: Reply) -> DeviceInfo:
    """DeviceInfo from an `info` reply."""
    v = _need(reply, ("info-protocol", "info-board", "info-sha256", "info-in", "info-out",
                      "info-arena", "info-macs", "info-timer", "info-tick-hz", "info-cycles"))
    if v["info-cycles"] not in ("0", "1"):
        raise LinkError(f"m-info-cycles must be 0 or 1: {v['info-cycles'][:24]!r}")
    tick_hz = _field(v, "info-tick-hz")
    if tick_hz == 0:
        raise LinkError("m-info-tick-hz-0: a timer without a rate")
    return DeviceInfo(protocol=_field(v, "info-protocol"), board=v["info-board"], sha256=v["info-sha256"],
                      input_size=_field(v, "info-in"), output_size=_field(v, "info-out"),
                      arena_bytes=_field(v, "info-arena"), macs=_field(v, "info-macs"), timer=v["info-timer"],
                      tick_hz=tick_hz, has_cycles=v["info-cycles"] == "1", frontend=v.get("info-frontend", ""),
                      raw_size=_field(v, "info-raw") if "info-raw" in v else 0)


@dataclass(frozen=True)
class MemInfo:
    """The `mem` reply."""

    arena_bytes: int
    stack_size: int
    stack_high_water: int


def parse_mem(reply: Reply) -> MemInfo:
    """MemInfo from a `mem` reply."""
    v = _need(reply, ("mem-arena", "mem-stack-size", "mem-stack-hwm"))
    return MemInfo(_field(v, "mem-arena"), _field(v, "mem-stack-size"), _field(v, "mem-stack-hwm"))


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
    parts = [ln[len(head):] for ln in reply.lines if ln.startswith(head) and not ln.startswith(crc_head)]
    bad = next((p for p in parts if len(p) % 2 or not _HEXLINE.match(p)), None)
    if bad is not None:
        raise LinkError(f"{name} is not hex: {bad[:40]!r}")
    data = bytes.fromhex("".join(parts))
    if len(data) != size or zlib.crc32(data) != _hex32(v, f"{name}-crc"):
        raise LinkError(f"{name} of {len(data)} bytes fails its CRC (expected {size} bytes)")
    return data


def _runs(v: dict[str, str], key: str) -> int:
    n = _field(v, key)
    if not 1 <= n <= MAX_RUNS:
        raise LinkError(f"m-{key}-{n}: outside 1..{MAX_RUNS}")
    return n


def parse_run(reply: Reply, *, output_size: int) -> RunResult:
    """RunResult from a `run` reply; the output's own CRC and length are checked."""
    v = _need(reply, ("run-n", "ticks", "cycles", "stack", "status", "in-crc", "out-crc"))
    out = _hex_block(reply, v, "out", output_size)
    status = _field(v, "status", _SIGNED)
    if status != 0:
        raise DeviceError(f"edgetk_invoke returned {status} on the device",
                          fix="the generated model failed; rebuild the firmware from a fresh codegen")
    return RunResult(runs=_runs(v, "run-n"), ticks=_field(v, "ticks"), cycles=_field(v, "cycles"),
                     stack_high_water=_field(v, "stack"), status=status, input_crc=_hex32(v, "in-crc"), output=out)


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
    status = _field(v, "status", _SIGNED)
    if status != 0:
        raise DeviceError(f"the frontend or the network returned {status} on the device",
                          fix="the generated library failed; rebuild the firmware from a fresh codegen")
    return RawRunResult(runs=_runs(v, "rrun-n"), frontend_ticks=_field(v, "fe-ticks"),
                        frontend_cycles=_field(v, "fe-cycles"), network_ticks=_field(v, "net-ticks"),
                        network_cycles=_field(v, "net-cycles"), stack_high_water=_field(v, "stack"), status=status,
                        raw_crc=_hex32(v, "raw-crc"), features=feat, features_crc=_hex32(v, "feat-crc"), output=out)


NO_FRONTEND = "no frontend in this build"


def parse_bload(reply: Reply, *, crc: int, cmd: str = "bload") -> None:
    """Check a `bload` (or `rload`) reply: the device's CRC of what it received equals ours."""
    v = reply.values()
    if NO_FRONTEND in reply.errors:
        raise NoFrontendError(f"the firmware has no frontend: it cannot take raw samples ({cmd})",
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
    """InferResult from an MLPerf `infer` reply (latency = (t1 - t0) / N, microseconds modulo 2^32)."""
    if reply.errors:
        raise DeviceError(f"device error: {'; '.join(reply.errors)}")
    laps = [int(m.group(1)) for ln in reply.lines if (m := _LAP.match(ln))]
    start = [m.group(1) for ln in reply.lines if (m := _START.match(ln))]
    res = "".join(ln.split("-[", 1)[1] if ln.startswith("m-results-[") else ln[len("m-results-cont-"):]
                  for ln in reply.lines if ln.startswith("m-results-"))
    if len(laps) != 2 or len(start) != 1 or "m-infer-done" not in reply.lines or not res.endswith("]"):
        raise LinkError(f"incomplete infer reply: {_preview(reply.raw)}")
    runs = int(start[0])
    if not 1 <= runs <= MAX_RUNS:
        raise LinkError(f"m-infer-start-{runs}: outside 1..{MAX_RUNS}")
    items = res[:-1].split(",")
    if not all(_RESULT.match(x) for x in items):
        raise LinkError(f"m-results holds something other than numbers: {res[:60]!r}")
    values = tuple(float(x) for x in items)
    return InferResult(runs=runs, us_per_inference=((laps[1] - laps[0]) % 2**32) / runs, results=values)


# ---- telling a refusal from a command the link garbled ------------------------------------------

_SIMPLE = ("name", "profile", "timestamp", "results", "info", "mem")
_LINK_REFUSALS = ("aborted by a byte on the link", "crc mismatch", "timeout after")
_SYNTAX_REFUSALS = (" expects: ", "Invalid hex digit", "Insufficent number of hex digits")
_SIZE = re.compile(r"(?:size must be|size out of range, max) ([0-9]{1,10})$")
_UNKNOWN = "Unknown command: "


def _dec_ok(text: str, top: int = 0xFFFFFFFF, low: int = 0) -> bool:
    return bool(_DEC.match(text)) and low <= int(text) <= top


def _words(cmd: str) -> list[str]:
    return [w for w in (cmd[:-1] if cmd.endswith("%") else cmd).split(" ") if w]


def well_formed(cmd: str) -> bool:
    """True when the firmware's grammar accepts `cmd` as written (dut.c dispatch): a refusal of such a command
    for its syntax means the device received something else."""
    line = cmd[:-1] if cmd.endswith("%") else cmd
    if len(line) > CMD_MAX or "%" in line or not all(" " <= c <= "~" for c in line):
        return False
    words = _words(cmd)
    if not words:
        return True
    name, args = words[0], words[1:4]
    if name in ("run", "rrun", "infer"):
        return len(args) <= 2 and (not args or _dec_ok(args[0], MAX_RUNS, 1)) and \
            (len(args) < 2 or _dec_ok(args[1], MAX_RUNS))
    if name in ("bload", "rload"):
        return len(args) >= 2 and _dec_ok(args[0]) and re.fullmatch(r"[0-9a-fA-F]{1,8}", args[1]) is not None
    if name == "db":
        return bool(args) and ((args[0] == "load" and len(args) >= 2 and _dec_ok(args[1])) or args[0] == "print"
                               or re.fullmatch(r"(?:[0-9a-fA-F]{2})+", args[0]) is not None)
    return name in _SIMPLE


def _garbled(error: str, sent: str) -> bool:
    """True when `error` shows that the device did not receive `sent` as it was sent (replies without m-cmd)."""
    words = _words(sent)
    if error.startswith(_UNKNOWN):
        return not words or error[len(_UNKNOWN):] != words[0]
    if error == "Command too long":
        return len(sent.rstrip("%")) <= CMD_MAX
    if any(k in error for k in _SYNTAX_REFUSALS):
        return well_formed(sent)
    size = _SIZE.search(error)
    if size and len(words) >= 2:
        arg = words[2] if words[0] == "db" and len(words) > 2 else words[1]
        if _DEC.match(arg):
            return int(arg) == int(size.group(1)) if "must be" in error else int(arg) <= int(size.group(1))
    return False


def check_echo(reply: Reply, sent: str) -> None:
    """LinkError when the reply is to a command other than `sent` (its m-cmd line differs)."""
    echo = reply.echo
    want = sent[:-1] if sent.endswith("%") else sent
    if echo is not None and echo != want:
        raise LinkError(f"the device received {echo!r}, not {want!r}: the command was corrupted on the link")


def check_errors(reply: Reply, sent: str) -> None:
    """Raise for the reply's e-[...] lines: LinkError when they come from the link (a byte lost or changed on the
    way, an upload cut, a run stopped by resync bytes), DeviceError when the device refused what was sent."""
    if not reply.errors:
        return
    text = "; ".join(reply.errors)
    link = any(k in e for e in reply.errors for k in _LINK_REFUSALS)
    if link or (reply.echo is None and any(_garbled(e, sent) for e in reply.errors)):
        raise LinkError(f"{sent!r} did not reach the device intact: {text}")
    raise DeviceError(f"device refused {sent!r}: {text}")


def check_reply(reply: Reply, sent: str) -> None:
    """check_echo, then check_errors."""
    check_echo(reply, sent)
    check_errors(reply, sent)


def hex_upload_commands(data: bytes, chunk: int = 31) -> list[str]:
    """The MLPerf upload: `db load N` then `db <hex>` chunks of 31 bytes, as its runner sends them."""
    cmds = [f"db load {len(data)}%"]
    cmds += [f"db {data[i:i + chunk].hex()}%" for i in range(0, len(data), chunk)]
    return cmds


def bload_command(data: bytes, cmd: str = "bload") -> str:
    """Our binary upload header: `bload N CRC32%` (or `rload` for raw samples), followed by the bytes."""
    return f"{cmd} {len(data)} {zlib.crc32(data):08x}%"
