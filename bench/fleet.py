"""Fleet: 32 per-speaker kws-digits models trained as one batched job vs the same 32 one after another.

Same data, epochs, init seeds and optimiser everywhere. The batched job runs its stacks in --workers
processes of 1 torch thread each (0 = one per CPU core; 1 = in this process on --threads threads).
Two baselines, each at every --baseline-threads torch thread count, measured in the same run and
printed side by side:
  (a) in-process loop: the fleet's own training loop on one plain model at a time (pure compute: same
      batches, no evaluation or checkpoints) - the speedup that is due to batching (and workers) alone;
  (b) the toolkit's normal path without fleets: `toolkit.train.train` once per member (recipe with
      data.groups = [speaker], train.seed = seed + i; it loads the data, evaluates and checkpoints every
      epoch and writes a run folder, as `edgetk train` does). Only the first --normal-count members run;
      their time is extrapolated linearly to all members (stated in the output).
Also prints each member's test top-1 gap to its twin of baseline (a) on the first thread count and the
weight agreement after a short run (float32 and float64). --dtype sets the precision of the batched job
and of (a); (b) runs `train()` in float32, as a user does. Usage: .venv/bin/python bench/fleet.py
[--reps 3] [--members 32] [--epochs 20] [--lr 0.01] [--dtype float32|float64] [--workers 0]
[--baseline-threads 1,2] [--inexact]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from toolkit.data import load_dataset  # noqa: E402
from toolkit.nn import build_model  # noqa: E402
from toolkit.recipe import Recipe, load_recipe  # noqa: E402
from toolkit.specialize.fleet import (Member, evaluate, fleet_workers, max_weight_diff, split_members,  # noqa: E402
                                      train_fleet)


def fleet_run(recipe: Recipe, data, members: int, seed: int, dtype: str, stack: int = 0,
              workers: int = 1, threads: int = 1, exact: bool = True) -> tuple[list[Member], float]:
    """Train the fleet in dtype: batched in stacks of `stack` over `workers` processes, or (stack 0) loop (a)."""
    make = lambda s: (torch.manual_seed(s), build_model(recipe, data).to(getattr(torch, dtype)))[1]  # noqa: E731
    ms = split_members(data, members, seed, dtype)
    torch.set_num_threads(threads)
    return ms, train_fleet(make, ms, recipe.train, stack > 0, stack, workers=workers, exact=exact)


def normal_path(recipe: Recipe, members: list[Member], count: int, threads: int) -> tuple[float, list[float]]:
    """Baseline (b): toolkit.train.train per member for the first `count` members; (seconds, test top-1 %)."""
    from toolkit.train import train

    seconds, top1 = 0.0, []
    with tempfile.TemporaryDirectory() as tmp:
        for m in members[:count]:
            r = recipe.replace(train=dataclasses.replace(recipe.train, seed=m.seed, threads=threads),
                               data=dataclasses.replace(recipe.data, groups=(m.group,)),
                               extra={k: v for k, v in recipe.extra.items() if k != "fleet"})
            t0 = time.perf_counter()
            out = train(r, Path(tmp) / m.name)
            seconds += time.perf_counter() - t0
            top1.append(100 * json.loads((out / "metrics.json").read_text())["value"])
    return seconds, top1


def _ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):7.1f} +- {statistics.pstdev(xs):.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--stack", type=int, default=4, help="members per grouped-operator pass")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the batched job with --workers 1")
    ap.add_argument("--workers", type=int, default=0, help="processes of the batched job (0 = one per CPU core)")
    ap.add_argument("--baseline-threads", default="1,2", help="torch thread counts for baselines (a) and (b)")
    ap.add_argument("--normal-count", type=int, default=4, help="members run through toolkit.train.train")
    ap.add_argument("--short-epochs", type=int, default=1, help="epochs of the weight-agreement run")
    ap.add_argument("--inexact", action="store_true",
                    help="[fleet] exact = false: every layer grouped (faster; members equal twins up to rounding)")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                    help="precision of the batched job and baseline (a); (b) stays float32")
    args = ap.parse_args()
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "models" / "kws-digits-fleet.toml",
                         [f"train.epochs={args.epochs}", f"train.lr={args.lr}", f"train.threads={args.threads}"])
    threads = [int(t) for t in args.baseline_threads.split(",")]
    data = load_dataset(recipe)
    t_b, acc_b, gaps, saved, full = [], [], [], [], []
    base: dict[tuple[str, int], list[tuple[float, float]]] = {}          # (baseline, threads): [(s, top-1)]
    for rep in range(args.reps):
        fb, sb = fleet_run(recipe, data, args.members, 1000 * rep, args.dtype, args.stack, args.workers, args.threads,
                           not args.inexact)
        fa, rows = baselines(recipe, data, args, 1000 * rep, threads)
        t_b.append(sb)
        gaps += [a.test_top1 - b.test_top1 for a, b in zip(fb, fa)]
        saved += [saved_gap(m) for m in fb]
        full += [max_weight_diff(a.model, b.model) for a, b in zip(fb, fa)]
        acc_b.append(statistics.mean(m.test_top1 for m in fb))
        for key, row in rows.items():
            base.setdefault(key, []).append(row)
        line = " | ".join(f"({k}) {t} thr {s:.1f} s = {s / sb:.2f}x, top-1 {a:.1f}%" for (k, t), (s, a) in rows.items())
        print(f"rep {rep}: batched {sb:.1f} s, top-1 {acc_b[-1]:.1f}% | {line}", flush=True)
    short = recipe.replace(train=dataclasses.replace(recipe.train, epochs=args.short_epochs))
    wdiff = {}
    for dtype in ("float32", "float64"):
        fb, _ = fleet_run(short, data, args.members, 0, dtype, args.stack, args.workers, args.threads,
                          not args.inexact)
        fa, _ = fleet_run(short, data, args.members, 0, dtype, threads=threads[0])
        wdiff[dtype] = [max_weight_diff(a.model, b.model) for a, b in zip(fb, fa)]
    report(args, recipe, len(fb[0].x_train), t_b, acc_b, base, gaps, wdiff)
    print(f"  full runs ({args.dtype}): max |weight difference| member vs twin (a): median "
          f"{statistics.median(full):.2e}, max {max(full):.2e}")
    print(f"  saved as float32 (what the run folders hold): {sum(g == 0 for g in saved)}/{len(saved)} members keep "
          f"their {args.dtype} test top-1 (max |change| {max(abs(g) for g in saved):.1f} points)")
    return 0


def baselines(recipe: Recipe, data, args, seed: int, threads: list[int]) -> tuple[list[Member], dict]:
    """Baselines (a) and (b) at each thread count: (the twins of (a) on threads[0], {(a|b, threads): (s, top-1)})."""
    loops = {t: fleet_run(recipe, data, args.members, seed, args.dtype, threads=t) for t in threads}
    twins = loops[threads[0]][0]
    rows = {("a", t): (s, statistics.mean(m.test_top1 for m in ms)) for t, (ms, s) in loops.items()}
    for t in threads:
        sn, top_n = normal_path(recipe, twins, args.normal_count, t)
        rows["b", t] = (sn * args.members / args.normal_count, statistics.mean(top_n))
    return twins, rows


def saved_gap(m: Member) -> float:
    """Test top-1 of the member's weights cast to float32 (as its run folder stores them) minus its own."""
    return evaluate(copy.deepcopy(m.model).float(), m.x_test.astype("float32"), m.y_test) - m.test_top1


def report(args, recipe: Recipe, clips: int, t_b, acc_b, base: dict, gaps, wdiff) -> None:
    """Print the summary: each baseline with its ratio, the twin gaps and the weight agreement."""
    absg = [abs(g) for g in gaps]
    workers = fleet_workers(args.workers, math.ceil(args.members / args.stack))
    print(f"kws-digits fleet: {args.members} members (DS-CNN width {recipe.model.width}, {clips} clips each, "
          f"{args.epochs} epochs, AdamW lr {args.lr}), stacks of {args.stack} "
          f"({'inexact: every layer grouped' if args.inexact else 'exact'}), {args.reps} reps; batched job in "
          f"{workers} worker process(es) x {1 if workers > 1 else args.threads} thread(s); batched job and (a) in "
          f"{args.dtype}, (b) in float32")
    print(f"  one batched job                         {_ms(t_b)} s   member top-1 {_ms(acc_b)} %")
    what = {"a": "in-process loop, pure compute", "b": "toolkit.train.train per member"}
    for (kind, threads), rows in base.items():
        sp = [s / b for (s, _), b in zip(rows, t_b)]
        note = f"   [first {args.normal_count} timed, x{args.members / args.normal_count:g}]" if kind == "b" else ""
        print(f"  ({kind}) {what[kind]:<30} {threads} thr {_ms([s for s, _ in rows])} s   member top-1 "
              f"{_ms([a for _, a in rows])} %   speedup {statistics.mean(sp):.2f}x +- {statistics.pstdev(sp):.2f}"
              f"   goal >= 8x {'met' if statistics.mean(sp) >= 8 else 'NOT met'}{note}")
    dist = ", ".join(f"{k:+.0f}: {v}" for k, v in sorted(Counter(round(g, 1) for g in gaps).items()))
    print(f"  member - twin (a) top-1 ({args.dtype}), {len(gaps)} pairs: {sum(g == 0 for g in absg)}/{len(gaps)} equal, "
          f"{sum(g <= 1.0 for g in absg)}/{len(gaps)} within 1 point (50 test clips: 1 clip = 2 points); mean |gap| "
          f"{statistics.mean(absg):.2f}, max {max(absg):.1f} points; distribution {{{dist}}}")
    for name, w in wdiff.items():
        print(f"  short run ({args.short_epochs} epoch(s), AdamW, {name}): max |weight difference| per member: "
              f"median {statistics.median(w):.2e}, max {max(w):.2e}")


if __name__ == "__main__":
    sys.exit(main())
