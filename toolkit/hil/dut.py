"""The protocol client: commands with per-command timeouts, retries, resync and a transcript."""
from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_write_text
from toolkit.hil import protocol as P
from toolkit.hil.transport import Transport

log = logging.getLogger(__name__)
T = TypeVar("T")


class NothingAnsweringError(EdgetkError):
    """No byte came back at all."""


class WrongBaudError(EdgetkError):
    """Bytes came back, but never a valid reply: typically a baud-rate mismatch."""


class Transcript:
    """Every byte each way, with timestamps; written as text for the report."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.entries: list[tuple[float, str, bytes]] = []

    def add(self, direction: str, data: bytes) -> None:
        """Record bytes sent ('>') or received ('<')."""
        if data:
            self.entries.append((time.monotonic() - self.t0, direction, data))

    def text(self, max_bytes: int = 256) -> str:
        """One line per burst (consecutive chunks one way), binary payloads abbreviated."""
        bursts: list[tuple[float, str, bytes]] = []
        for t, d, data in self.entries:
            if bursts and bursts[-1][1] == d:
                bursts[-1] = (bursts[-1][0], d, bursts[-1][2] + data)
            else:
                bursts.append((t, d, data))
        out = []
        for t, d, data in bursts:
            shown = data[:max_bytes].decode("ascii", errors="backslashreplace")
            more = f" ... (+{len(data) - max_bytes} bytes)" if len(data) > max_bytes else ""
            out.append(f"{t:9.3f} {d} {shown!r}{more}")
        return "\n".join(out) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the transcript atomically."""
        return atomic_write_text(path, self.text())


@dataclass(frozen=True)
class LinkPolicy:
    """Timeouts and retries of the client."""

    timeout_s: float = 5.0             # per command, until m-ready
    retries: int = 3                   # extra attempts after a link error
    sync_timeout_s: float = 1.0        # per ping while synchronising


class Dut:
    """A device speaking the edgetk / MLPerf Tiny protocol over a Transport."""

    def __init__(self, transport: Transport, policy: LinkPolicy = LinkPolicy(),
                 transcript: Transcript | None = None) -> None:
        self.transport = transport
        self.policy = policy
        self.transcript = transcript or Transcript()
        self.stats = {"commands": 0, "retries": 0, "payload_bytes": 0, "wire_bytes": 0, "reuploads": 0}
        self.input_crc: int | None = None
        self.raw_crc: int | None = None
        self.echoes = False  # the firmware opens checked replies with m-cmd-[..] (protocol 2): seen once
        self.uploaded: dict[str, bytes] = {}  # the last upload the device confirmed, per command (bload, rload)
        self.flush_bytes = 0  # payload bytes the device may still wait for (an upload attempt that failed)

    # ---- raw exchange -------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self.transcript.add(">", data)
        self.stats["wire_bytes"] += len(data)
        self.transport.write(data)

    def _read_until(self, marks: tuple[bytes, ...], timeout: float, first_s: float | None = None) -> bytes:
        """Bytes through one of `marks` within `timeout`; with `first_s`, the first byte must come that soon
        (a firmware that echoes its commands answers at once, so a lost command costs first_s, not timeout)."""
        buf, start = b"", time.monotonic()
        deadline = start + timeout
        while not any(buf.endswith(m) for m in marks):
            now = time.monotonic()
            if not buf and first_s is not None and now - start > first_s:
                raise P.LinkError(f"no answer within {first_s:.1f} s (the command was lost on the link?)")
            left = deadline - now
            if left <= 0:
                raise P.LinkError(f"no complete reply within {timeout:.1f} s; got {buf[-80:]!r}")
            chunk = self.transport.read(min(left, 0.2))
            self.transcript.add("<", chunk)
            buf += chunk
        return buf

    def _first_s(self, timeout: float) -> float | None:
        return self.policy.timeout_s if self.echoes and timeout > self.policy.timeout_s else None

    def exchange(self, cmd: str, *, checked: bool, timeout: float | None = None) -> P.Reply:
        """One attempt: send `cmd`, read through m-ready, check the reply's checksum (no retry, no error check)."""
        self.transport.reset_input()
        self._send(cmd.encode("ascii"))
        wait = timeout or self.policy.timeout_s
        reply = P.parse_reply(self._read_until((P.READY,), wait, self._first_s(wait)), checked=checked)
        self.echoes = self.echoes or reply.echo is not None
        return reply

    def resync(self) -> None:
        """Flush the device's command buffer with a bare '%' and drain whatever arrives. After a failed upload
        attempt, first as many LF bytes as its payload: they complete a payload the device may still wait for
        (then it answers with a CRC mismatch), and the command parser ignores them otherwise."""
        self._send(b"\n" * self.flush_bytes + b"\r\n%")
        deadline = time.monotonic() + self.policy.sync_timeout_s
        while time.monotonic() < deadline:
            chunk = self.transport.read(0.1)
            self.transcript.add("<", chunk)
            if not chunk:
                break
        self.transport.reset_input()

    def retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """Run `attempt`, resyncing and retrying on link errors; fail clearly when retries run out."""
        last: Exception | None = None
        for i in range(self.policy.retries + 1):
            if i:
                self.stats["retries"] += 1
                log.info("retrying %s after: %s", what, last)
                self.resync()
            try:
                self.stats["commands"] += 1
                return attempt()
            except P.LinkError as e:
                last = e
        raise P.LinkError(f"{what}: no valid reply after {self.policy.retries + 1} attempts: {last}",
                          fix="check the link (cable, baud rate, emulator log); the transcript shows the bytes")

    def command(self, cmd: str, *, checked: bool = True, timeout: float | None = None) -> P.Reply:
        """A command with retries: a reply to a command the link garbled (its echo differs, or it refuses the
        syntax of a well-formed command) is retried; a refusal of what was sent (e-[...]) is a DeviceError."""
        def attempt() -> P.Reply:
            reply = self.exchange(cmd, checked=checked, timeout=timeout)
            P.check_reply(reply, cmd)
            return reply
        return self.retrying(cmd, attempt)

    # ---- protocol -----------------------------------------------------------------------------

    def sync(self) -> str:
        """Make sure something answers the protocol; return its name. Clear errors otherwise."""
        seen = b""
        for _ in range(self.policy.retries + 2):
            try:
                self.resync()
                reply = self.exchange("name%", checked=False, timeout=self.policy.sync_timeout_s)
                return P.parse_name(reply)
            except P.DeviceResetError:  # the boot banner arrived late: the device just booted, sync again
                continue
            except P.LinkError as e:
                seen += b"".join(d for _, k, d in self.transcript.entries[-8:] if k == "<")
                log.debug("sync: %s", e)
        if not seen:
            raise NothingAnsweringError(f"nothing answers on {self.transport.url}",
                                        fix="is the firmware flashed and running? check the port, "
                                        "the board's power, and its boot log")
        if P.looks_like_garbage(seen):
            raise WrongBaudError(f"{self.transport.url} sends bytes that are not the protocol "
                                 f"({seen[:24]!r}...): wrong baud rate?",
                                 fix=f"set connection.baud in the target TOML to the firmware's rate "
                                 f"(now {self.transport.settings.baud})")
        raise NothingAnsweringError(f"{self.transport.url} answers, but not with the edgetk protocol: "
                                    f"{seen[:60]!r}", fix="flash edgetk firmware (edgetk flash BUNDLE --target T)")

    def info(self) -> P.DeviceInfo:
        """Build info: board, model sha256, sizes, timer."""
        return P.parse_info(self.command("info%"))

    def mem(self) -> P.MemInfo:
        """Arena and stack high-water mark."""
        return P.parse_mem(self.command("mem%"))

    def _bload_once(self, data: bytes, cmd: str = "bload") -> P.Reply:
        sent = P.bload_command(data, cmd)
        crc = zlib.crc32(data)
        self.transport.reset_input()
        self._send(sent.encode("ascii"))
        head = self._read_until((f"m-{cmd}-ready\r\n".encode(), P.READY), self.policy.timeout_s)
        if head.endswith(P.READY):  # refused before the payload: a real refusal, or a header the link garbled
            reply = P.parse_reply(head, checked=True)
            self._refused(reply, sent, crc, cmd)
            P.parse_bload(reply, crc=crc, cmd=cmd)
        self._send(data)
        rest = self._read_until((P.READY,), self.policy.timeout_s + len(data) / 1000)
        reply = P.parse_reply(head + rest, checked=True)
        self._refused(reply, sent, crc, cmd)
        P.parse_bload(reply, crc=crc, cmd=cmd)
        return reply

    def _refused(self, reply: P.Reply, sent: str, crc: int, cmd: str) -> None:
        self.echoes = self.echoes or reply.echo is not None
        P.check_echo(reply, sent)
        if P.NO_FRONTEND in reply.errors:
            P.parse_bload(reply, crc=crc, cmd=cmd)  # the DeviceError that says so, with its fix
        P.check_errors(reply, sent)

    def _upload(self, data: bytes, cmd: str, what: str, size_fix: str) -> int:
        self.flush_bytes = len(data)
        try:
            self.retrying(cmd, lambda: self._bload_once(data, cmd))
        except P.LinkError as e:
            self.resync()  # leave a device that still waits for the payload ready for the next command
            raise P.LinkError(f"{what} of {len(data)} bytes failed: {e}",
                              fix=f"{size_fix}; otherwise check the link (transcript)") from e
        except P.NoFrontendError:
            raise
        except P.DeviceError as e:
            raise P.DeviceError(f"{what} of {len(data)} bytes failed: {e}", fix=size_fix) from e
        finally:
            self.flush_bytes = 0
        self.stats["payload_bytes"] += len(data)
        return zlib.crc32(data)

    def upload(self, data: bytes) -> None:
        """Binary upload with length and CRC32, retried until the device confirms the CRC."""
        self.input_crc = None
        self.input_crc = self._upload(data, "bload", "upload", "the input size must equal the model's EDGETK_INPUT_SIZE")
        self.uploaded["bload"] = data

    def upload_raw(self, data: bytes) -> None:
        """Binary upload of one raw window (int16 little-endian) to a firmware with a frontend (`rload`), retried
        until the device confirms the CRC; a firmware without a frontend is a DeviceError, not retried."""
        self.raw_crc = None
        self.raw_crc = self._upload(data, "rload", "raw upload",
                                    "the raw window must hold EDGETK_RAW_SIZE int16 values (m-info-raw- bytes)")
        self.uploaded["rload"] = data

    def run_raw(self, runs: int = 1, warmup: int = 0, *, features_size: int, output_size: int,
                timeout: float | None = None) -> P.RawRunResult:
        """`rrun N W`: the frontend then the network on the uploaded raw window, N times; features and output
        CRC-checked, the device's raw CRC checked against the upload's."""
        cmd = self._runs_command("rrun", runs, warmup)
        self.input_crc = None  # the device's model input becomes the features of the raw window
        restored: list[str] = []

        def attempt() -> P.RawRunResult:
            reply = self.exchange(cmd, checked=True, timeout=timeout)
            P.check_echo(reply, cmd)
            if P.NO_FRONTEND in reply.errors:
                raise P.NoFrontendError("the firmware has no frontend: it cannot run raw samples (rrun)",
                                    fix="build it from a bundle exported with a [frontend]")
            if self.raw_crc is not None and "no raw input loaded" in reply.errors:
                raise P.DeviceResetError("the device lost the uploaded raw window: it was reset between commands",
                                         fix="check power and the reset line (DTR/RTS policy), then run again")
            P.check_errors(reply, cmd)
            r = P.parse_rrun(reply, features_size=features_size, output_size=output_size)
            if r.runs != runs:
                raise P.LinkError(f"device ran {r.runs} raw inferences, {runs} were asked (command corrupted)")
            if self.raw_crc is not None and r.raw_crc != self.raw_crc:
                self._restore("rload", restored, "the device ran on a different raw window than the one uploaded")
            return r
        r = self.retrying("rrun", attempt)
        self.input_crc = r.features_crc  # the features are the model input now (`run` works on them)
        return r

    def _restore(self, cmd: str, restored: list[str], what: str) -> None:
        """The device's copy of an upload changed after it was confirmed (a command garbled into another one, e.g.
        `run` into `rrun`, overwrites it): upload it again and retry once (LinkError); a second time, DeviceError."""
        data = self.uploaded.get(cmd)
        if data is None or restored:
            raise P.DeviceError(what, fix="the device may have reset or overwritten its buffer; upload again")
        restored.append(cmd)
        self.stats["reuploads"] += 1
        (self.upload if cmd == "bload" else self.upload_raw)(data)
        raise P.LinkError(f"{what}: uploaded it again")

    @staticmethod
    def _runs_command(name: str, runs: int, warmup: int) -> str:
        """`<name> N W%`, refused here when N or W is outside what the firmware accepts."""
        if not (1 <= runs <= P.MAX_RUNS and 0 <= warmup <= P.MAX_RUNS):
            raise EdgetkError(f"{name} {runs} {warmup}: N must be 1..{P.MAX_RUNS} and W 0..{P.MAX_RUNS}",
                              fix=f"split longer runs into several commands of at most {P.MAX_RUNS} inferences")
        return f"{name} {runs} {warmup}%"

    def upload_hex(self, data: bytes) -> None:
        """The MLPerf Tiny upload (`db load N` + hex chunks): compatible, and slower. Its replies carry no
        checksum and `db <hex>` appends, so a failed chunk restarts the whole upload, which is then read back
        (`db print`) and compared before it counts."""
        def attempt() -> None:
            for cmd in P.hex_upload_commands(data):
                reply = self.exchange(cmd, checked=False)
                P.check_reply(reply, cmd)
            if self.printed(self.exchange("db print%", checked=False)) != data:
                raise P.LinkError("the device holds other bytes than the ones uploaded (db print)")
        self.retrying("db upload", attempt)
        self.stats["payload_bytes"] += len(data)

    @staticmethod
    def printed(reply: P.Reply) -> bytes:
        """The bytes of a `db print` reply (`m-buffer-xx-xx...` lines)."""
        try:
            return bytes.fromhex("".join(ln[len("m-buffer-"):].replace("-", "") for ln in reply.lines
                                         if ln.startswith("m-buffer-")))
        except ValueError:
            return b""

    def run(self, runs: int = 1, warmup: int = 0, *, output_size: int, timeout: float | None = None) -> P.RunResult:
        """Run `runs` timed inferences on the loaded input; the output is CRC-checked."""
        cmd = self._runs_command("run", runs, warmup)
        restored: list[str] = []

        def attempt() -> P.RunResult:
            reply = self.exchange(cmd, checked=True, timeout=timeout)
            P.check_echo(reply, cmd)
            if self.input_crc is not None and "no input loaded" in reply.errors:
                raise P.DeviceResetError("the device lost the uploaded input: it was reset between commands",
                                         fix="check power and the reset line (DTR/RTS policy), then run again")
            P.check_errors(reply, cmd)
            r = P.parse_run(reply, output_size=output_size)
            if r.runs != runs:
                raise P.LinkError(f"device ran {r.runs} inferences, {runs} were asked (command corrupted)")
            if self.input_crc is not None and r.input_crc != self.input_crc:
                self._restore("bload", restored, "the device ran on a different input than the one uploaded")
            return r
        return self.retrying("run", attempt)

    def infer(self, runs: int = 1, warmup: int = 10, timeout: float = 30.0) -> P.InferResult:
        """The MLPerf Tiny `infer N W` command (what the MLCommons runner sends), retried like the others."""
        cmd = self._runs_command("infer", runs, warmup)

        def attempt() -> P.InferResult:
            reply = self.exchange(cmd, checked=False, timeout=timeout)
            P.check_reply(reply, cmd)
            r = P.parse_infer(reply)
            if r.runs != runs:
                raise P.LinkError(f"device ran {r.runs} inferences, {runs} were asked (command corrupted)")
            return r
        return self.retrying("infer", attempt)
