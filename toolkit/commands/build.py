"""`edgetk build BUNDLE --target T`: compile the firmware (runtime + port + the bundle's generated C)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk build`."""
    p = sub.add_parser("build", help="build the firmware of a bundle for a target")
    p.add_argument("bundle", type=Path, help="bundle folder (edgetk export)")
    p.add_argument("--target", required=True, help="target name (edgetk targets)")
    p.add_argument("-o", "--out", type=Path, default=None, help="build folder (default build/<target>/<hash>)")
    return p


def build_bundle(bundle_dir: Path, target: str, out: Path | None):
    """Build and return (target adapter, firmware)."""
    from toolkit.hil.adapters import make_target
    from toolkit.hil.bundle import load_bundle
    from toolkit.hil.runner import build_dir_for, c_library
    from toolkit.targets import get_target

    spec, bundle = get_target(target), load_bundle(bundle_dir)
    out = out or build_dir_for(spec, bundle)
    adapter = make_target(spec)
    return adapter, adapter.build(c_library(bundle, out), out)


def run(args: argparse.Namespace) -> int:
    """Build and print the image and its sizes."""
    _, fw = build_bundle(args.bundle, args.target, args.out)
    print(f"firmware: {fw.elf}")
    if fw.flash_bytes:
        print(f"flash {fw.flash_bytes:,} B, static RAM {fw.static_ram_bytes:,} B, stack {fw.stack_bytes:,} B "
              "(arm-none-eabi-size)")
    return 0
