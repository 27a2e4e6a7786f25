"""`edgetk profile BUNDLE --target T`: measure latency, memory and on-device fidelity; write reports."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk profile`."""
    p = sub.add_parser("profile", help="profile a bundle on a board, QEMU, the host simulator or this machine")
    p.add_argument("bundle", type=Path, help="bundle folder (edgetk export)")
    p.add_argument("--target", required=True, help="target name (edgetk targets)")
    p.add_argument("--port", default=None, help="serial port or pyserial URL (socket://, /dev/ttyACM0, ...)")
    p.add_argument("--samples", type=int, default=20, help="test inputs sent to the device (default 20)")
    p.add_argument("-o", "--out", type=Path, default=None, help="report folder (default BUNDLE/profile-<target>)")
    return p


def run(args: argparse.Namespace) -> int:
    """Profile and print the summary and where the reports are."""
    from toolkit.errors import EdgetkError
    from toolkit.hil import profile

    if args.samples < 1:
        raise EdgetkError(f"--samples {args.samples}: need at least 1", fix="e.g. --samples 20")
    result = profile(args.bundle, args.target, port=args.port, samples=args.samples, out_dir=args.out)
    print(result.summary())
    print(f"report: {result.html_path}")
    return 0
