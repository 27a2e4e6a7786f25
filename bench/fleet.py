"""Fleet: 32 per-speaker kws-digits models trained as one batched job vs the same 32 one after another.

Same data, epochs, seeds and optimiser for both; both on the same torch thread count. Prints the
wall-clock of each (mean +- std over repetitions with different seeds), the speedup, how far each
member's test top-1 is from its individually trained twin's, and the weight agreement after a short run.
Usage: .venv/bin/python bench/fleet.py [--reps 3] [--members 32] [--epochs 10] [--threads 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from toolkit.data import load_dataset  # noqa: E402
from toolkit.nn import build_model  # noqa: E402
from toolkit.recipe import load_recipe  # noqa: E402
from toolkit.specialize.fleet import max_weight_diff, split_members, train_fleet  # noqa: E402


def fleet_pair(recipe, data, members: int, seed: int):
    """Train the fleet batched and sequentially; (batched members, seconds, sequential members, seconds)."""
    make = lambda s: (torch.manual_seed(s), build_model(recipe, data))[1]  # noqa: E731
    out = []
    for batched in (True, False):
        ms = split_members(data.x_train, data.y_train, data.groups_train, data.x_test, data.y_test,
                           data.groups_test, members, seed)
        out += [ms, train_fleet(make, ms, recipe.train, batched, recipe.fleet.stack)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "models" / "kws-digits-fleet.toml",
                         [f"train.epochs={args.epochs}"])
    torch.set_num_threads(args.threads)
    data = load_dataset(recipe)
    t_b, t_s, deltas, acc_b, acc_s = [], [], [], [], []
    for rep in range(args.reps):
        fb, sb, fs, ss = fleet_pair(recipe, data, args.members, 1000 * rep)
        t_b.append(sb)
        t_s.append(ss)
        deltas += [abs(a.test_top1 - b.test_top1) for a, b in zip(fb, fs)]
        acc_b.append(statistics.mean(m.test_top1 for m in fb))
        acc_s.append(statistics.mean(m.test_top1 for m in fs))
        print(f"rep {rep}: batched {sb:.1f} s, sequential {ss:.1f} s, speedup {ss / sb:.2f}x; "
              f"mean member top-1 {acc_b[-1]:.1f}% vs twins {acc_s[-1]:.1f}%", flush=True)
    short = dataclasses.replace(recipe.train, epochs=1)
    fb, _, fs, _ = fleet_pair(recipe.replace(train=short), data, args.members, 0)
    wdiff = max(max_weight_diff(a.model, b.model) for a, b in zip(fb, fs))
    speed = [s / b for s, b in zip(t_s, t_b)]
    within = sum(d <= 1.0 for d in deltas)
    print(f"kws-digits fleet: {args.members} members (DS-CNN width {recipe.model.width}, "
          f"{len(fb[0].x_train)} clips each, {args.epochs} epochs), {args.threads} threads, {args.reps} reps")
    print(f"  sequential (baseline)  {statistics.mean(t_s):7.1f} +- {statistics.pstdev(t_s):.1f} s   "
          f"member top-1 {statistics.mean(acc_s):.1f} +- {statistics.pstdev(acc_s):.1f} %")
    print(f"  one batched job        {statistics.mean(t_b):7.1f} +- {statistics.pstdev(t_b):.1f} s   "
          f"member top-1 {statistics.mean(acc_b):.1f} +- {statistics.pstdev(acc_b):.1f} %")
    print(f"  speedup {statistics.mean(speed):.2f}x +- {statistics.pstdev(speed):.2f} (goal >= 8x)")
    print(f"  |member - twin| top-1: mean {statistics.mean(deltas):.2f}, max {max(deltas):.1f} points; "
          f"{within}/{len(deltas)} within 1 point (50 test clips per member: 1 clip = 2 points)")
    print(f"  short run (1 epoch, AdamW, float32): max |weight difference| {wdiff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
