"""Fleet that specializes one shared base vs the from-scratch fleet of bench/fleet.py, same machine, same run.

32 per-speaker kws-digits DS-CNNs (width 0.25; FSDD's 6 speakers cycled with new seeds), the config of
bench/fleet.py (AdamW, lr 0.01, batch 32, 20 epochs):
  scratch   bench/fleet.py's batched job: every member trains its whole network on its speaker's clips
            (stacks of 4 in one worker process per core, exact members);
  shared    one base trained once on every speaker's training clips (toolkit.train.train, --base-epochs), then
            each member specializes it ([fleet] mode = "specialize", toolkit.specialize.fleet.train_shared_fleet):
            the frozen base's activations below the member's top are computed once per speaker, every member's
            top (--pefts: probe, top, bitfit, lora) trains --epochs epochs above them, all members stacked in one
            pass (LoRA: one after another); members are merged plain DS-CNNs, evaluated as such.
Prints per rep and as mean +- std: wall seconds and mean member test top-1 of each, and the speedup of the
specialization job alone (the base is "pretrained once": reused by every later fleet) and with the base's
training counted. Usage: .venv/bin/python bench/fleet_shared.py [--reps 2] [--members 32] [--epochs 20]
[--base-epochs 20] [--pefts probe,top] [--workers 0]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from fleet import fleet_run  # noqa: E402  (bench/fleet.py: the from-scratch fleet)
from toolkit.data import load_dataset  # noqa: E402
from toolkit.recipe import load_recipe  # noqa: E402
from toolkit.specialize.fleet import split_members, train_shared_fleet  # noqa: E402


def shared_fleet(recipe, data, members: int, seed: int, base_epochs: int, pefts: list[str], stack: int,
                 tmp: Path) -> dict:
    """Train the base once (seed), then specialize it per peft mode; {"base": (s, top-1), peft: (s, top-1, info)}."""
    from toolkit.train import load_run, train

    torch.set_num_threads(1)
    r = recipe.replace(train=dataclasses.replace(recipe.train, epochs=base_epochs, seed=seed),
                       extra={k: v for k, v in recipe.extra.items() if k != "fleet"})
    t0 = time.perf_counter()
    run = train(r, tmp / f"base-{seed}")
    out = {"base": (time.perf_counter() - t0, 100 * load_run(run).metrics["value"])}
    base = load_run(run).model
    for peft in pefts:
        ms = split_members(data, members, seed)
        info = train_shared_fleet(base, ms, recipe.train, peft, stack=stack)
        out[peft] = (info["seconds"], statistics.mean(m.test_top1 for m in ms), info)
    return out


def _ms(xs: list[float], fmt: str = ".1f") -> str:
    return f"{statistics.mean(xs):{fmt}} +- {statistics.pstdev(xs):{fmt}}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=20, help="epochs of each scratch member and of each shared top")
    ap.add_argument("--base-epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--pefts", default="probe,top")
    ap.add_argument("--stack", type=int, default=32, help="members per stacked pass of the shared tops")
    ap.add_argument("--workers", type=int, default=0, help="processes of the scratch fleet (0 = one per core)")
    args = ap.parse_args()
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "models" / "kws-digits-fleet.toml",
                         [f"train.epochs={args.epochs}", f"train.lr={args.lr}", "train.threads=1"])
    data = load_dataset(recipe)
    pefts = args.pefts.split(",")
    rows: dict[str, list] = {"scratch": [], "base": [], **{p: [] for p in pefts}}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            seed = 1000 * rep
            ms, s = fleet_run(recipe, data, args.members, seed, "float32", 4, args.workers, 1, True)
            rows["scratch"].append((s, statistics.mean(m.test_top1 for m in ms)))
            sh = shared_fleet(recipe, data, args.members, seed, args.base_epochs, pefts, args.stack, Path(tmp))
            rows["base"].append(sh["base"])
            line = " | ".join(f"{p} {sh[p][0]:.1f} s = {s / sh[p][0]:.1f}x ({s / (sh[p][0] + sh['base'][0]):.1f}x "
                              f"with the base), top-1 {sh[p][1]:.2f}% (cache {sh[p][2]['cache_s']:.2f} s, tops "
                              f"{sh[p][2]['train_s']:.1f} s, {sh[p][2]['trainable_params']} trainable params)"
                              for p in pefts)
            for p in pefts:
                rows[p].append(sh[p][:2])
            print(f"rep {rep}: scratch {s:.1f} s, top-1 {rows['scratch'][-1][1]:.2f}% | base {sh['base'][0]:.1f} s "
                  f"(its test top-1 {sh['base'][1]:.2f}%) | {line}", flush=True)
    sc = rows["scratch"]
    print(f"kws-digits fleet, {args.members} members (DS-CNN width {recipe.model.width}), {args.epochs} epochs, "
          f"AdamW lr {args.lr}, {args.reps} reps; base {args.base_epochs} epochs on every speaker's training clips")
    print(f"  scratch (bench/fleet.py batched job)   {_ms([s for s, _ in sc])} s   member top-1 {_ms([a for _, a in sc], '.2f')} %")
    print(f"  shared base, trained once              {_ms([s for s, _ in rows['base']])} s   base top-1 "
          f"{_ms([a for _, a in rows['base']], '.2f')} % (all test clips)")
    for p in pefts:
        sp = [a[0] / b[0] for a, b in zip(sc, rows[p])]
        spb = [a[0] / (b[0] + c[0]) for a, b, c in zip(sc, rows[p], rows["base"])]
        gap = [b[1] - a[1] for a, b in zip(sc, rows[p])]
        ok = statistics.mean(sp) >= 8 and statistics.mean(gap) >= 0
        print(f"  specialize ({p:<6})                    {_ms([s for s, _ in rows[p]])} s   member top-1 "
              f"{_ms([a for _, a in rows[p]], '.2f')} %   speedup {_ms(sp, '.1f')}x (with the base's training: "
              f"{_ms(spb, '.1f')}x), top-1 vs scratch {statistics.mean(gap):+.2f} points   "
              f"goal >= 8x at equal or better top-1: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
