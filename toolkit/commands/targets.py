"""`edgetk targets`: every target (shipped, and the user's from --targets, $EDGETK_TARGETS, ./targets), where
each came from, and how each stands in for the others."""
from __future__ import annotations

import argparse

from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk targets`."""
    p = sub.add_parser("targets", help="list boards, emulators, simulators and host runtimes, shipped and your own "
                       "(--targets DIR, $EDGETK_TARGETS, ./targets)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    """Print every target with its core, clock, memory, runtime, fallback and origin."""
    from toolkit.targets import load_targets

    targets = load_targets()
    if args.json:
        emit({n: {"kind": t.kind, "core": t.core, "clock_hz": t.clock_hz, "flash_bytes": t.flash_bytes,
                  "ram_bytes": t.ram_bytes, "runtime": t.runtime, "simulator": t.simulator,
                  "usb_ids": list(t.usb_ids), "file": str(t.path), "origin": t.origin} for n, t in targets.items()})
        return 0
    print(f"{'target':15s} {'kind':6s} {'core':10s} {'clock':>8s} {'flash':>8s} {'RAM':>8s} {'runtime':12s} "
          f"{'stands in':12s} from")
    for t in targets.values():
        mhz = f"{t.clock_hz / 1e6:.0f} MHz" if t.clock_hz else "-"
        kb = lambda n: f"{n // 1024} KB" if n else "-"  # noqa: E731
        where = t.origin if t.origin == "shipped" else f"{t.origin} ({t.path})"
        print(f"{t.name:15s} {t.kind:6s} {t.core:10s} {mhz:>8s} {kb(t.flash_bytes):>8s} {kb(t.ram_bytes):>8s} "
              f"{t.runtime:12s} {t.simulator or '(estimate)':12s} {where}")
    return 0
