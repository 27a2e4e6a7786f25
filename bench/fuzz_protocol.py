"""Fuzz the host's protocol parser (issue #14): recorded replies of every type (info, mem, run, rrun, bload, rload,
MLPerf infer, name, db print, errors, a reboot banner), corrupted as a link corrupts them (bytes and lines changed,
the device's m-sum kept) or forged (malformed fields behind a recomputed m-sum), through the client's path:
parse_reply, check_reply (echo and refusals), the reply's parser.

Property: a result or one of the protocol's errors, never another exception; a wire-corrupted checksummed reply is
never accepted with a result other than the recorded one; an accepted reply holds only values the protocol allows.
Prints inputs tried, failures (reproducers under --out, replay with toolkit.hil.fuzz_protocol.replay) and the
slowest input, beside the baseline: the unmutated recorded replies through the same check.

    python bench/fuzz_protocol.py [--n 1000000 | --seconds 600] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.hil import fuzz_protocol as F  # noqa: E402
from toolkit.paths import REPO_ROOT  # noqa: E402


def main() -> int:
    """Baseline, campaign, report; exit 1 on any failure."""
    p = argparse.ArgumentParser(description="fuzz campaign: the host protocol parser")
    p.add_argument("--n", type=int, default=None, help="inputs to try (default 1,000,000 without --seconds)")
    p.add_argument("--seconds", type=float, default=None, help="time budget instead of --n")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out" / "fuzz-protocol")
    a = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    n = a.n if a.n is not None or a.seconds is not None else 1_000_000
    t0 = time.monotonic()
    base = [F.check(s) for s in F.seed_inputs()]
    rate = len(base) / max(time.monotonic() - t0, 1e-9)
    rep = F.campaign(n=n, seconds=a.seconds, seed=a.seed)
    saved = F.save_failures(rep, a.out) if rep.failures else []
    print(f"baseline: {len(base)} recorded replies, {base.count('accepted')} accepted, {base.count('refused')} refused "
          f"(the 4 recorded errors) ({rate:.0f} inputs/s)")
    print(rep.summary())
    kinds: dict[str, int] = {}
    for f in rep.failures:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    print(f"failures by kind: {kinds or 'none'}; reproducers: {len(saved)} under {a.out if saved else '-'}")
    if rep.elapsed_s:
        print(f"1,000,000 inputs at this rate: {1e6 / (rep.tried / rep.elapsed_s) / 60:.1f} min on this machine")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "report.json").write_text(json.dumps(rep.to_json(), indent=1))
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
