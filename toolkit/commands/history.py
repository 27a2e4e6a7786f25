"""`edgetk history [--model X] [--target T]`: the profiles recorded in the local history store, oldest first.

Every `edgetk profile` (and validate) appends one row: model, target, what ran, git commit, date and the
headline figures. The store: $EDGETK_HISTORY, else $EDGETK_HOME/history.sqlite, else
~/.local/share/edgetk/history.sqlite. `edgetk compare A B` shows the deltas of two runs.
"""
from __future__ import annotations

import argparse

from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk history`."""
    p = sub.add_parser("history", help="list past profiles (model, target, commit, figures) from the local store",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="a model's sha256 (or its first characters) or name")
    p.add_argument("--target", default=None, help="a target name")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    return p


def run(args: argparse.Namespace) -> int:
    """Print the runs (or emit them as JSON)."""
    from toolkit.hil import history
    from toolkit.hil.report import HISTORY_HEAD, history_rows

    path = history.store_path()
    rows = history.runs(model=args.model, target=args.target, path=path)
    if args.json:
        emit({"store": str(path), "runs": rows})
        return 0
    print(f"history store: {path} ({len(rows)} run{'s' * (len(rows) != 1)})")
    table = [("model", "target", *HISTORY_HEAD)] + [(str(r["model"])[:20], str(r["target"]), *t)
                                                    for r, t in zip(rows, history_rows({"runs": rows}))]
    widths = [max(len(str(c)) for c in col) for col in zip(*table)]
    for line in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
    return 0
