"""`edgetk compare A B`: the headline figures of two profiles side by side, with B - A and the change in percent.

A and B are run ids from `edgetk history` or a profile's report.json (or its folder).
"""
from __future__ import annotations

import argparse

from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk compare`."""
    p = sub.add_parser("compare", help="compare two profiles (run ids from `edgetk history` or report.json files)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A", help="run id or report.json (the baseline)")
    p.add_argument("b", metavar="B", help="run id or report.json")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    return p


def run(args: argparse.Namespace) -> int:
    """Print (or emit) the deltas of B against A."""
    from toolkit.hil import history
    from toolkit.hil.report import _fmt

    a, b = history.load(args.a), history.load(args.b)
    deltas = history.compare(a, b)
    if args.json:
        emit({"a": a, "b": b, "deltas": deltas})
        return 0
    for name, run in (("A", a), ("B", b)):
        print(f"{name}: run {run['id'] if run['id'] is not None else run['report']}: {run['model']} on {run['target']} "
              f"(ran on {run['ran_on']}), {run['date']}, git {str(run['git_commit'])[:12]}")
    print(f"{'figure':16s} {'A':>14s} {'B':>14s} {'B - A':>14s} {'change':>9s}")
    for d in deltas:
        pct = f"{d['pct']:+.2f} %" if d["pct"] is not None else "-"
        delta = _fmt(d["delta"]) if d["delta"] is not None else "-"
        print(f"{d['figure']:16s} {_fmt(d['a']):>14s} {_fmt(d['b']):>14s} {delta:>14s} {pct:>9s}")
    return 0
