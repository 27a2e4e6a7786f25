"""Bytes in, bytes out: every link is opened through `serial.serial_for_url`.

A real device path (/dev/ttyACM0), `socket://127.0.0.1:PORT` for QEMU, a pty path for the host
simulator, `loop://` or `spy://` for debugging: one class, one call.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from toolkit.errors import EdgetkError
from toolkit.targets import ConnectionSpec

log = logging.getLogger(__name__)


class LinkClosedError(EdgetkError):
    """The serial link went away (cable, emulator exit, port closed)."""


@dataclass(frozen=True)
class LinkSettings:
    """What the transport needs from a target's [connection] table."""

    baud: int = 115200
    dtr: str = "low"
    rts: str = "low"
    settle_s: float = 0.0

    @classmethod
    def from_spec(cls, spec: ConnectionSpec) -> LinkSettings:
        """The link settings of a target's connection table."""
        return cls(baud=spec.baud, dtr=spec.dtr, rts=spec.rts, settle_s=spec.settle_s)


class Transport:
    """A byte stream over pyserial; `read` returns what arrived within the timeout (maybe b"")."""

    def __init__(self, url: str, settings: LinkSettings = LinkSettings()) -> None:
        self.url = url
        self.settings = settings
        self._port = None

    def open(self) -> Transport:
        """Open the port with the DTR/RTS policy applied before opening, settle, then flush."""
        import serial

        try:
            # pyserial's rfc2217:// client refuses a write timeout (its writes go to a socket with its own)
            wt = {} if self.url.startswith("rfc2217://") else {"write_timeout": 10}
            port = serial.serial_for_url(self.url, do_not_open=True, baudrate=self.settings.baud, timeout=0, **wt)
            for line, policy in (("dtr", self.settings.dtr), ("rts", self.settings.rts)):
                if policy != "keep":
                    setattr(port, line, policy == "high")
            port.open()
        except (serial.SerialException, ValueError, OSError) as e:
            raise _open_error(self.url, e) from e
        self._port = port
        time.sleep(self.settings.settle_s)
        port.reset_input_buffer()
        return self

    def write(self, data: bytes) -> None:
        """Send bytes (all of them, or LinkClosedError)."""
        try:
            self._require().write(data)
            self._require().flush()
        except (OSError, EdgetkError) as e:
            raise LinkClosedError(f"link {self.url} closed while writing: {e}",
                                  fix="check the cable / that the emulator is still running") from e
        except Exception as e:  # serial.SerialException, imported lazily
            raise LinkClosedError(f"link {self.url} failed while writing: {e}",
                                  fix="check the cable / that the emulator is still running") from e

    def read(self, timeout: float) -> bytes:
        """Bytes that arrive within `timeout` seconds (returns as soon as some are there)."""
        port = self._require()
        deadline = time.monotonic() + timeout
        try:
            while True:
                data = port.read(65536)  # non-blocking (timeout=0): whatever has arrived
                if data or time.monotonic() >= deadline:
                    return data
                time.sleep(0.0005)
        except Exception as e:  # serial.SerialException or OSError: the other side went away
            raise LinkClosedError(f"link {self.url} closed while reading: {e}",
                                  fix="the device or emulator stopped; look at its log and retry") from e

    def reset_input(self) -> None:
        """Drop bytes received but not read (LinkClosedError when the other side went away)."""
        port = self._require()
        try:
            port.reset_input_buffer()
        except Exception as e:  # termios.error / OSError / serial.SerialException: the device or emulator is gone
            raise LinkClosedError(f"link {self.url} closed: {e}",
                                  fix="the device or emulator stopped; look at its log and retry") from e

    def close(self) -> None:
        """Close the port (idempotent)."""
        if self._port is not None:
            self._port.close()
            self._port = None

    def _require(self):
        if self._port is None:
            raise LinkClosedError(f"link {self.url} is closed", fix="open the transport (again); if the device went away, check it")
        return self._port

    def __enter__(self) -> Transport:
        return self.open() if self._port is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_error(url: str, e: Exception) -> EdgetkError:
    text = str(e)
    if url.startswith("rfc2217://"):
        return EdgetkError(f"no RFC 2217 serial server answers at {url} ({text})",
                           fix="check that ser2net runs on the lab host with an accepter such as "
                               "'telnet(rfc2217),tcp,PORT' for this board; a server that never answers line-control "
                               "requests (a pseudo-terminal behind ser2net has no DTR/RTS) needs ?ign_set_control "
                               "after the port")
    if url.startswith("socket://"):
        return EdgetkError(f"nothing is listening at {url} ({text})",
                           fix="start the emulator first (edgetk profile starts it for you)")
    if "No such file" in text or "could not open port" in text or "Errno 2" in text:
        return EdgetkError(f"no such serial port: {url}",
                           fix="plug the board in and list ports with `edgetk ports`, then pass --port")
    if "Permission denied" in text or "Errno 13" in text:
        return EdgetkError(f"no permission to open {url}",
                           fix="add yourself to the dialout group (sudo usermod -aG dialout $USER), log in again")
    return EdgetkError(f"cannot open {url}: {text}", fix="check the port name with `edgetk ports`")
