"""`edgetk targets`: the targets under targets/ and how each stands in for the others."""
from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk targets`."""
    p = sub.add_parser("targets", help="list boards, emulators, simulators and host runtimes (targets/*.toml)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    """Print every target with its core, clock, memory, runtime and fallback."""
    from toolkit.targets import load_targets

    targets = load_targets()
    if args.json:
        print(json.dumps({n: {"kind": t.kind, "core": t.core, "clock_hz": t.clock_hz, "flash_bytes": t.flash_bytes,
                              "ram_bytes": t.ram_bytes, "runtime": t.runtime, "simulator": t.simulator,
                              "usb_ids": list(t.usb_ids), "file": str(t.path)} for n, t in targets.items()}, indent=2))
        return 0
    print(f"{'target':15s} {'kind':6s} {'core':10s} {'clock':>8s} {'flash':>8s} {'RAM':>8s} {'runtime':12s} stands in")
    for t in targets.values():
        mhz = f"{t.clock_hz / 1e6:.0f} MHz" if t.clock_hz else "-"
        kb = lambda n: f"{n // 1024} KB" if n else "-"  # noqa: E731
        print(f"{t.name:15s} {t.kind:6s} {t.core:10s} {mhz:>8s} {kb(t.flash_bytes):>8s} {kb(t.ram_bytes):>8s} "
              f"{t.runtime:12s} {t.simulator or '(estimate)'}")
    return 0
