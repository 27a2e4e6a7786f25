"""Fleet: 32 per-speaker kws-digits models trained as one batched job vs the same 32 one after another.

Same data, epochs, init seeds and optimiser everywhere; same torch thread count. Two baselines, measured
in the same run and printed side by side:
  (a) in-process loop: the fleet's own training loop on one plain model at a time (pure compute: same
      batches, no evaluation or checkpoints) - the speedup that is due to batching alone;
  (b) the toolkit's normal path without fleets: `toolkit.train.train` once per member (recipe with
      data.groups = [speaker], train.seed = seed + i; it loads the data, evaluates and checkpoints every
      epoch and writes a run folder, as `edgetk train` does). Only the first --normal-count members run;
      their time is extrapolated linearly to all members (stated in the output).
Also prints each member's test top-1 gap to its twin of baseline (a) and the weight agreement after a
short run (float32 and float64). --dtype sets the precision of the batched job and of (a); (b) runs
`train()` in float32, as a user does. Usage: .venv/bin/python bench/fleet.py [--reps 3] [--members 32]
[--epochs 20] [--lr 0.01] [--dtype float32|float64]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
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
from toolkit.specialize.fleet import Member, evaluate, max_weight_diff, split_members, train_fleet  # noqa: E402


def fleet_pair(recipe: Recipe, data, members: int, seed: int, stack: int, dtype: str = "float32") -> tuple:
    """Train the fleet batched and with loop (a) in dtype; (batched members, seconds, loop members, seconds)."""
    make = lambda s: (torch.manual_seed(s), build_model(recipe, data).to(getattr(torch, dtype)))[1]  # noqa: E731
    out: list = []
    for batched in (True, False):
        ms = split_members(data, members, seed, dtype)
        out += [ms, train_fleet(make, ms, recipe.train, batched, stack)]
    return tuple(out)


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
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--normal-count", type=int, default=4, help="members run through toolkit.train.train")
    ap.add_argument("--short-epochs", type=int, default=1, help="epochs of the weight-agreement run")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                    help="precision of the batched job and baseline (a); (b) stays float32")
    args = ap.parse_args()
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "models" / "kws-digits-fleet.toml",
                         [f"train.epochs={args.epochs}", f"train.lr={args.lr}", f"train.threads={args.threads}"])
    torch.set_num_threads(args.threads)
    data = load_dataset(recipe)
    t_b, t_a, t_n, gaps, acc_b, acc_a, acc_n, saved, full = [], [], [], [], [], [], [], [], []
    for rep in range(args.reps):
        fb, sb, fa, sa = fleet_pair(recipe, data, args.members, 1000 * rep, args.stack, args.dtype)
        sn, top_n = normal_path(recipe, fa, args.normal_count, args.threads)
        torch.set_num_threads(args.threads)
        sn *= args.members / args.normal_count
        t_b.append(sb), t_a.append(sa), t_n.append(sn)
        gaps += [a.test_top1 - b.test_top1 for a, b in zip(fb, fa)]
        saved += [saved_gap(m) for m in fb]
        full += [max_weight_diff(a.model, b.model) for a, b in zip(fb, fa)]
        acc_b.append(statistics.mean(m.test_top1 for m in fb))
        acc_a.append(statistics.mean(m.test_top1 for m in fa))
        acc_n.append(statistics.mean(top_n))
        print(f"rep {rep}: batched {sb:.1f} s | (a) loop {sa:.1f} s = {sa / sb:.2f}x | (b) train() "
              f"{sn:.1f} s (extrapolated from {args.normal_count}) = {sn / sb:.2f}x; member top-1 batched "
              f"{acc_b[-1]:.1f}% / twins {acc_a[-1]:.1f}% / train() {acc_n[-1]:.1f}%", flush=True)
    short = recipe.replace(train=dataclasses.replace(recipe.train, epochs=args.short_epochs))
    wdiff = {}
    for dtype in ("float32", "float64"):
        fb, _, fa, _ = fleet_pair(short, data, args.members, 0, args.stack, dtype)
        wdiff[dtype] = [max_weight_diff(a.model, b.model) for a, b in zip(fb, fa)]
    report(args, recipe, len(fb[0].x_train), t_b, t_a, t_n, acc_b, acc_a, acc_n, gaps, wdiff)
    print(f"  full runs ({args.dtype}): max |weight difference| member vs twin (a): median "
          f"{statistics.median(full):.2e}, max {max(full):.2e}")
    print(f"  saved as float32 (what the run folders hold): {sum(g == 0 for g in saved)}/{len(saved)} members keep "
          f"their {args.dtype} test top-1 (max |change| {max(abs(g) for g in saved):.1f} points)")
    return 0


def saved_gap(m: Member) -> float:
    """Test top-1 of the member's weights cast to float32 (as its run folder stores them) minus its own."""
    return evaluate(copy.deepcopy(m.model).float(), m.x_test.astype("float32"), m.y_test) - m.test_top1


def report(args, recipe: Recipe, clips: int, t_b, t_a, t_n, acc_b, acc_a, acc_n, gaps, wdiff) -> None:
    """Print the summary: each baseline with its ratio, the twin gaps and the weight agreement."""
    sp_a = [a / b for a, b in zip(t_a, t_b)]
    sp_n = [n / b for n, b in zip(t_n, t_b)]
    absg = [abs(g) for g in gaps]
    print(f"kws-digits fleet: {args.members} members (DS-CNN width {recipe.model.width}, {clips} clips each, "
          f"{args.epochs} epochs, AdamW lr {args.lr}), stacks of {args.stack}, {args.threads} thread(s), "
          f"{args.reps} reps; batched job and (a) in {args.dtype}, (b) in float32")
    print(f"  one batched job                    {_ms(t_b)} s   member top-1 {_ms(acc_b)} %")
    print(f"  (a) in-process loop, pure compute  {_ms(t_a)} s   member top-1 {_ms(acc_a)} %   "
          f"speedup {statistics.mean(sp_a):.2f}x +- {statistics.pstdev(sp_a):.2f}")
    print(f"  (b) toolkit.train.train per member {_ms(t_n)} s   member top-1 {_ms(acc_n)} %   "
          f"speedup {statistics.mean(sp_n):.2f}x +- {statistics.pstdev(sp_n):.2f}   "
          f"[first {args.normal_count} members timed, x{args.members / args.normal_count:g} extrapolated]")
    print(f"  goal >= 8x: vs (a) {'met' if statistics.mean(sp_a) >= 8 else 'NOT met'}, "
          f"vs (b) {'met' if statistics.mean(sp_n) >= 8 else 'NOT met'}")
    dist = ", ".join(f"{k:+.0f}: {v}" for k, v in sorted(Counter(round(g, 1) for g in gaps).items()))
    print(f"  member - twin (a) top-1 ({args.dtype}), {len(gaps)} pairs: {sum(g == 0 for g in absg)}/{len(gaps)} equal, "
          f"{sum(g <= 1.0 for g in absg)}/{len(gaps)} within 1 point (50 test clips: 1 clip = 2 points); mean |gap| "
          f"{statistics.mean(absg):.2f}, max {max(absg):.1f} points; distribution {{{dist}}}")
    for name, w in wdiff.items():
        print(f"  short run ({args.short_epochs} epoch(s), AdamW, {name}): max |weight difference| per member: "
              f"median {statistics.median(w):.2e}, max {max(w):.2e}")


if __name__ == "__main__":
    sys.exit(main())
