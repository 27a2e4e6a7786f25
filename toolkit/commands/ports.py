"""`edgetk ports`: serial ports on this machine, matched to known boards by USB VID:PID."""
from __future__ import annotations

import argparse
from dataclasses import asdict
from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk ports`."""
    p = sub.add_parser("ports", help="list serial ports with USB VID:PID matched to known boards")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    """Print the ports pyserial sees."""
    from toolkit.hil.ports import list_ports
    from toolkit.targets import load_targets

    ports = list_ports(load_targets())
    if args.json:
        emit([asdict(p) for p in ports])
        return 0
    if not ports:
        print("no serial ports found (plug a board in; on Linux check `dmesg | tail` and the dialout group)")
        return 0
    for p in ports:
        what = p.known_as or p.description
        targets = f"  → --target {', '.join(p.targets)}" if p.targets else ""
        print(f"{p.device:22s} {p.vid_pid or '-':10s} {what}{targets}")
    return 0
