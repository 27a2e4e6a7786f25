"""Link soak (issue #14): >= 10,000 inferences through the real client, a fault-injecting transport (byte drops,
flips and inserts both ways, read stalls beyond the timeout, device resets) and the real firmware on the host
simulator (stand-in model and frontend: half bload + run, half rload + rrun). Prints exchanges, faults injected,
retries, clear errors and wrong results accepted, beside the baseline measured in the same run: the same device
over the clean link (no faults, no retries). Goal: 0 wrong results accepted, 0 exchanges aborted with retries left.

    python bench/link_soak.py [--n 10000] [--rate 0.001] [--delay-rate 0.0005] [--reset-every 2000] [--seed 0]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.hil.soak import soak  # noqa: E402


def main() -> int:
    """Run the soak; exit 1 when a wrong result was accepted or an exchange was aborted with retries left."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000, help="inferences over the faulty link")
    p.add_argument("--rate", type=float, default=0.001, help="per byte and direction: drop, flip or insert")
    p.add_argument("--delay-rate", type=float, default=0.0005, help="per read: a stall of up to two timeouts")
    p.add_argument("--reset-every", type=int, default=2000, help="a device reset every N inferences on average")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--timeout", type=float, default=0.25, help="per-command reply timeout (s)")
    p.add_argument("--baseline", type=int, default=1000, help="inferences over the clean link")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        base, rep = soak(tmp, n=a.n, rate=a.rate, seed=a.seed, retries=a.retries, timeout_s=a.timeout,
                         delay_rate=a.delay_rate, reset_every=a.reset_every, baseline=a.baseline)
    print(f"link: host-sim (firmware runtime + stand-in model and frontend over a pty), retries {a.retries}, "
          f"timeout {a.timeout} s, fault rate {a.rate} per byte each way, stalls {a.delay_rate} per read, "
          f"a reset every ~{a.reset_every} inferences, seed {a.seed}\n")
    print(base.summary("baseline, clean link"))
    print()
    print(rep.summary("soak, faulty link"))
    ok = rep.wrong_accepted == 0 and rep.aborted_with_retries_left == 0 and base.wrong_accepted == 0
    print(f"\ngoal: 0 wrong results accepted, 0 exchanges aborted with retries left -> {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
