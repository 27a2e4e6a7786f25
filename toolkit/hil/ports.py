"""Serial ports on this machine, matched to known boards by USB VID:PID."""
from __future__ import annotations

from dataclasses import dataclass

from toolkit.targets import TargetSpec

# Well-known USB ids of debug probes and boards; target TOMLs add their own.
KNOWN_USB = {
    "0483:374b": "ST-LINK/V2-1 (STM32 Nucleo)",
    "0483:374e": "ST-LINK/V3 (STM32 Nucleo-144)",
    "0483:3752": "ST-LINK/V2-1",
    "0483:3753": "ST-LINK/V3",
    "2341:805a": "Arduino Nano 33 BLE",
    "2e8a:0005": "Raspberry Pi Pico (MicroPython)",
    "2e8a:000a": "Raspberry Pi Pico (CDC)",
    "303a:1001": "ESP32-S3 USB-Serial/JTAG",
    "10c4:ea60": "CP210x UART bridge (ESP32 dev kits)",
    "1a86:7523": "CH340 UART bridge",
    "0d28:0204": "DAPLink / CMSIS-DAP",
    "1366:0105": "SEGGER J-Link",
}


@dataclass(frozen=True)
class PortInfo:
    """One serial port and what it probably is."""

    device: str
    vid_pid: str
    description: str
    known_as: str
    targets: tuple[str, ...]


def match_ports(raw: list[tuple[str, str, str]], targets: dict[str, TargetSpec]) -> list[PortInfo]:
    """Match (device, vid:pid, description) rows to known boards and targets (pure)."""
    out = []
    for device, vid_pid, desc in raw:
        vp = vid_pid.lower()
        names = tuple(t.name for t in targets.values() if vp and vp in t.usb_ids)
        out.append(PortInfo(device, vp, desc, KNOWN_USB.get(vp, ""), names))
    return out


def list_ports(targets: dict[str, TargetSpec]) -> list[PortInfo]:
    """The serial ports pyserial sees, matched to boards."""
    from serial.tools import list_ports as lp

    raw = [(p.device, f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None else "", p.description or "")
           for p in lp.comports()]
    return match_ports(raw, targets)


def find_board_port(spec: TargetSpec) -> str | None:
    """The first serial port whose USB id belongs to this target, if any."""
    hits = [p for p in list_ports({spec.name: spec}) if spec.name in p.targets]
    return hits[0].device if hits else None
