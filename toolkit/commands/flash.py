"""`edgetk flash BUNDLE --target T [--port P]`: build, flash, and check the board answers with this model."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk flash`."""
    p = sub.add_parser("flash", help="build and flash the firmware of a bundle, then check the model hash")
    p.add_argument("bundle", type=Path, help="bundle folder (edgetk export)")
    p.add_argument("--target", required=True, help="target name (edgetk targets)")
    p.add_argument("--port", default=None, help="serial port or pyserial URL (default: by USB id)")
    return p


def run(args: argparse.Namespace) -> int:
    """Flash, boot, and verify the device reports the bundle's model sha256."""
    from toolkit.commands.build import build_bundle
    from toolkit.hil.bundle import load_bundle
    from toolkit.hil.runner import Session, check_model

    adapter, fw = build_bundle(args.bundle, args.target, None)
    if args.port:
        adapter.port = args.port
    reason = adapter.unavailable()
    if reason:
        from toolkit.errors import EdgetkError

        raise EdgetkError(f"cannot flash {args.target}: {reason}", fix="attach the board or pass --port")
    adapter.flash(fw)
    with Session(adapter, fw.elf.parent) as s:
        info = check_model(s.dut, load_bundle(args.bundle))
    print(f"flashed {fw.elf} to {args.target}: board {info.board!r} runs model {info.sha256[:16]}…")
    return 0
