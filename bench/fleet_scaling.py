"""Fleet speedup against the number of cores: the batched job at several worker counts vs one model after another.

Same recipe, data, seeds and members as bench/fleet.py (kws-digits per-speaker DS-CNNs). In one run:
baseline (a), the fleet's own loop on one plain model at a time on 1 torch thread, then the batched job
(exact members, stacks of --stack) on each of --workers processes of 1 thread. Prints each time and its
speedup over (a), mean and spread over --reps, and checks that every member equals its twin of (a).
The fleet is meant to use the cores it is given: each stack is independent work. Usage:
.venv/bin/python bench/fleet_scaling.py [--workers 1,2,4,8] [--members 32] [--stack 4] [--epochs 20] [--reps 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from fleet import fleet_run  # noqa: E402

from toolkit.data import load_dataset  # noqa: E402
from toolkit.recipe import load_recipe  # noqa: E402
from toolkit.specialize.fleet import max_weight_diff  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2,4,8", help="worker processes (cores) of the batched job")
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--stack", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "models" / "kws-digits-fleet.toml",
                         [f"train.epochs={args.epochs}", f"train.lr={args.lr}", "train.threads=1"])
    data = load_dataset(recipe)
    base, fleet, diffs = [], {w: [] for w in workers}, []
    for rep in range(args.reps):
        twins, s = fleet_run(recipe, data, args.members, 1000 * rep, "float32", threads=1)
        base.append(s)
        line = [f"rep {rep}: (a) one after another, 1 thread {s:.1f} s"]
        for w in workers:
            ms, t = fleet_run(recipe, data, args.members, 1000 * rep, "float32", args.stack, w, 1, True)
            fleet[w].append(t)
            diffs += [max_weight_diff(a.model, b.model) for a, b in zip(ms, twins)]
            line.append(f"{w} worker(s) {t:.1f} s = {s / t:.2f}x")
        print(" | ".join(line), flush=True)
    print(f"fleet scaling on {len(os.sched_getaffinity(0))} CPU cores ({torch.__version__}): {args.members} kws-digits "
          f"DS-CNN members, {args.epochs} epochs, stacks of {args.stack}, exact, {args.reps} reps")
    print(f"  (a) one plain model after another, 1 thread   {statistics.mean(base):7.1f} +- {statistics.pstdev(base):.1f} s")
    for w, ts in fleet.items():
        sp = [b / t for b, t in zip(base, ts)]
        print(f"  batched job, {w:2d} worker(s)                    {statistics.mean(ts):7.1f} +- {statistics.pstdev(ts):.1f} s"
              f"   speedup {statistics.mean(sp):5.2f}x +- {statistics.pstdev(sp):.2f}"
              f"   goal >= 8x {'met' if statistics.mean(sp) >= 8 else 'not met'}")
    print(f"  every member vs its twin of (a): max |weight difference| {max(diffs):.2e} over {len(diffs)} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
