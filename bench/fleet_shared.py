"""Fleet that specializes one shared base vs the from-scratch fleet of bench/fleet.py, same machine, same run.

32 per-speaker kws-digits DS-CNNs (width 0.25; FSDD's 6 speakers cycled with new seeds):
  scratch   bench/fleet.py's batched job, config as in bench/fleet.py (AdamW, lr 0.01, batch 32, 20 epochs,
            stacks of 4, one worker process per core, exact members): every member trains its whole network
            on its speaker's clips;
  shared    models/kws-digits-fleet-shared.toml as `edgetk train` runs it: its base trained once on every
            speaker's training clips (toolkit.train.train with the recipe's [train], kernel "fused": the C
            training step, a run folder as the job writes it, then load_run), fine-tuned once per speaker
            ([fleet] group_epochs, group_lr), then each member specializes its speaker's network ([fleet] mode =
            "specialize", toolkit.specialize.fleet.train_shared_fleet, the tops for [fleet] epochs): the frozen
            activations below the member's top are computed once per speaker, every member's top (--pefts:
            probe, top, bitfit, lora; default the recipe's peft) trains above them, all members stacked in one
            pass (LoRA: one after another); members are merged plain DS-CNNs, evaluated as such.
Headline: the whole shared job (base training + specialization) against the scratch fleet; the specialization
alone (a base "pretrained once" and reused by later fleets) is printed too. Both arms get the dataset already
loaded (the scratch arm does) and run in this process, interleaved (scratch first in even reps, shared first in
odd ones); the 1-minute load average is printed before each arm (the machine may be shared). Rep 0's shared arm
also pays gcc's build of the fused kernel into an empty folder (what a machine's first job pays once).
Prints per rep and as mean +- std: wall seconds and mean member test top-1 of each arm, and the speedups.
Usage: .venv/bin/python bench/fleet_shared.py [--reps 3] [--members 32] [--pefts probe] [--set train.epochs=6 ...]
       [--first-seed 0] [--step-reps 3]  (the base's step time with [train] kernel torch and fused, same run)
       .venv/bin/python bench/fleet_shared.py --sweep-seeds 1-10 [--sweep-scratch]  (top-1 per seed only: the
       shared job's; with --sweep-scratch also the from-scratch fleet's on the same seeds)
"""
from __future__ import annotations

import argparse
import dataclasses
import os
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
from toolkit.recipe import Recipe, load_recipe  # noqa: E402
from toolkit.specialize.fleet import group_config, split_members, tops_config, train_shared_fleet  # noqa: E402
from toolkit.train.trainer import batches  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "models"


def shared_fleet(recipe: Recipe, data, members: int, seed: int, pefts: list[str], tmp: Path) -> dict:
    """Train the recipe's base (seed) as the job does, then specialize it per peft mode with the recipe's
    [train] and [fleet]; {"base": (s, top-1 %), peft: (s, mean member top-1 %, info)}."""
    from toolkit.train import load_run, train

    r = recipe.replace(train=dataclasses.replace(recipe.train, seed=seed),
                       extra={k: v for k, v in recipe.extra.items() if k != "fleet"})
    t0 = time.perf_counter()
    run = load_run(train(r, tmp / f"base-{seed}", data=data), data=data)
    out = {"base": (time.perf_counter() - t0, 100 * run.metrics["value"])}
    torch.set_num_threads(max(1, recipe.train.threads))
    f = recipe.fleet
    for peft in pefts:
        ms = split_members(data, members, seed)
        info = train_shared_fleet(run.model, ms, tops_config(r.train, f.epochs), peft, f.top_layers, f.rank,
                                  f.alpha, f.stack, f.exact, group_config(r.train, f.group_epochs, f.group_lr))
        out[peft] = (info["seconds"], statistics.mean(m.test_top1 for m in ms), info)
    return out


def epoch_seconds(recipe: Recipe, data, kernel: str) -> float:
    """Wall seconds of one training epoch of the recipe's base as the trainer runs it (train_epoch, deterministic
    mode) with [train] kernel = `kernel` (torch: autograd on channels-last and torch's fused AdamW, 1 thread, its
    fastest here; fused: the C training step and the C AdamW on the recipe's threads)."""
    from toolkit.nn import build_model
    from toolkit.train.trainer import channels_last_grads, default_loss, determinism, loop_parts, memory_format, train_epoch

    cfg = dataclasses.replace(recipe.train, kernel=kernel, threads=1 if kernel == "torch" else recipe.train.threads)
    with determinism(cfg):
        model = build_model(recipe, data)
        fmt = memory_format(model, data.x_train, kernel)
        model.to(memory_format=fmt)
        fused, opt, sched = loop_parts(cfg, model, data)
        with channels_last_grads(model, fmt):
            t0 = time.perf_counter()
            train_epoch(model, opt, sched, data, cfg, 0, default_loss(data.kind, cfg.label_smoothing), fmt,
                        fused=fused)
            return time.perf_counter() - t0


def kernel_build_seconds(recipe: Recipe, data, tmp: Path) -> float:
    """gcc's build of the fused kernel for the recipe's base into an empty folder (what the first job on a machine
    pays; later jobs load it from the build cache); 0 for the torch kernel."""
    if recipe.train.kernel != "fused":
        return 0.0
    from toolkit.nn import build_model
    from toolkit.train import fused

    channels = build_model(recipe, data).stem[0].out_channels
    t0 = time.perf_counter()
    fused.build(channels, cache=tmp / f"kernel-{time.monotonic_ns()}")
    return time.perf_counter() - t0


def seed_sweep(recipe: Recipe, data, members: int, seeds: str, pefts: list[str], scratch: Recipe | None = None,
               workers: int = 0) -> int:
    """The shared job alone for each seed in FIRST-LAST (base seed s, members s..s+members-1): how much its
    members' top-1 moves with the seed; with `scratch`, the from-scratch fleet's members on the same seeds too."""
    first, last = (int(v) for v in seeds.split("-"))
    tops: dict[str, list[float]] = {"base": [], **{p: [] for p in pefts}, **({"scratch": []} if scratch else {})}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(first, last + 1):
            sh = shared_fleet(recipe, data, members, seed, pefts, Path(tmp))
            if scratch is not None:
                ms, _ = fleet_run(scratch, data, members, seed, "float32", 4, workers, 1, True)
                sh["scratch"] = (0.0, statistics.mean(m.test_top1 for m in ms))
            for k in tops:
                tops[k].append(sh[k][1])
            print(f"seed {seed}: base top-1 {sh['base'][1]:.2f}% | " +
                  " | ".join(f"{p} members {sh[p][1]:.2f}%" for p in pefts) +
                  (f" | scratch members {sh['scratch'][1]:.2f}%" if scratch else ""), flush=True)
    for k, v in tops.items():
        print(f"  {k:<6} top-1 over seeds {first}-{last}: {_ms(v, '.2f')} % (min {min(v):.2f}, max {max(v):.2f})")
    return 0


def _ms(xs: list[float], fmt: str = ".1f") -> str:
    return f"{statistics.mean(xs):{fmt}} +- {statistics.pstdev(xs):{fmt}}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--pefts", default="", help="comma-separated (default: the recipe's [fleet] peft)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override the shared recipe (models/kws-digits-fleet-shared.toml), e.g. train.epochs=8")
    ap.add_argument("--workers", type=int, default=0, help="processes of the scratch fleet (0 = one per core)")
    ap.add_argument("--first-seed", type=int, default=0, help="rep r uses seeds first_seed + 1000 r ...")
    ap.add_argument("--step-reps", type=int, default=3,
                    help="base epochs timed per [train] kernel (torch, fused), interleaved (0: skip)")
    ap.add_argument("--sweep-seeds", default="", metavar="FIRST-LAST",
                    help="only the shared job (no scratch arm, no timing claim) for seeds FIRST..LAST: top-1s")
    ap.add_argument("--sweep-scratch", action="store_true",
                    help="with --sweep-seeds: the from-scratch fleet's top-1 on the same seeds too")
    args = ap.parse_args()
    scratch = load_recipe(MODELS / "kws-digits-fleet.toml", ["train.epochs=20", "train.lr=0.01", "train.threads=1"])
    shared = load_recipe(MODELS / "kws-digits-fleet-shared.toml", args.set)
    data = load_dataset(scratch)
    pefts = args.pefts.split(",") if args.pefts else [shared.fleet.peft]
    # the base's run folder draws its curve (rundir.write_curve): its modules are imported before any clock runs
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401

    if args.sweep_seeds:
        return seed_sweep(shared, data, args.members, args.sweep_seeds, pefts,
                          scratch if args.sweep_scratch else None, args.workers)
    rows: dict[str, list] = {"scratch": [], "base": [], **{p: [] for p in pefts}}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            seed = args.first_seed + 1000 * rep
            loads = {}
            for arm in (("scratch", "shared") if rep % 2 == 0 else ("shared", "scratch")):
                loads[arm] = os.getloadavg()[0]
                if arm == "scratch":
                    ms, s = fleet_run(scratch, data, args.members, seed, "float32", 4, args.workers, 1, True)
                    acc = statistics.mean(m.test_top1 for m in ms)
                else:
                    build = kernel_build_seconds(shared, data, Path(tmp)) if rep == 0 else 0.0
                    sh = shared_fleet(shared, data, args.members, seed, pefts, Path(tmp))
            rows["scratch"].append((s, acc, loads["scratch"]))
            rows["base"].append((sh["base"][0] + build, sh["base"][1], loads["shared"]))
            b = sh["base"][0] + build
            line = " | ".join(f"{p}: {sh[p][0]:.2f} s (per-group fine-tunes {sh[p][2]['group_s']:.2f}, "
                              f"cache {sh[p][2]['cache_s']:.2f}, tops {sh[p][2]['train_s']:.2f}, "
                              f"{sh[p][2]['trainable_params']} trainable params/member), top-1 {sh[p][1]:.2f}%, "
                              f"base + specialization {b + sh[p][0]:.2f} s = {s / (b + sh[p][0]):.1f}x "
                              f"(specialization alone {s / sh[p][0]:.1f}x)" for p in pefts)
            for p in pefts:
                rows[p].append(sh[p][:2])
            built = f" incl. the fused kernel's gcc build {build:.2f} s" if build else ""
            print(f"rep {rep} (seeds {seed}-{seed + args.members - 1}): scratch {s:.1f} s, top-1 {acc:.2f}% "
                  f"[load {loads['scratch']:.1f}] | base {b:.2f} s{built} (its top-1 {sh['base'][1]:.2f}% on all "
                  f"test clips) [load {loads['shared']:.1f}] | {line}", flush=True)
    steps = len(batches(len(data.x_train), shared.train.batch_size, shared.train.seed, 0))
    times: dict[str, list[float]] = {"torch": [], "fused": []}
    for _ in range(args.step_reps):      # the base's step time with each [train] kernel, interleaved
        for kernel in times:
            load = os.getloadavg()[0]
            times[kernel].append(epoch_seconds(shared, data, kernel))
            print(f"  base epoch ({steps} steps of batch {shared.train.batch_size}), kernel {kernel}: "
                  f"{times[kernel][-1]:.3f} s = {1000 * times[kernel][-1] / steps:.2f} ms/step [load {load:.1f}]",
                  flush=True)
    if args.step_reps:
        b, a = (min(times[k]) * 1000 / steps for k in times)
        print(f"  base step time (best of {args.step_reps}): kernel torch {b:.2f} ms, fused {a:.2f} ms ({b / a:.2f}x); "
              f"{shared.train.epochs} epochs = {shared.train.epochs * steps} steps: "
              f"{shared.train.epochs * steps * min(times[shared.train.kernel]) / steps:.2f} s of steps")
    sc, t = rows["scratch"], shared.train
    print(f"kws-digits fleet, {args.members} members (DS-CNN width {scratch.model.width}), {args.reps} reps, same run; "
          f"scratch: 20 epochs, AdamW lr 0.01, batch 32 (bench/fleet.py); shared: {t.epochs} epochs, "
          f"{t.optimizer} lr {t.lr} ({t.scheduler}), batch {t.batch_size}, {t.threads} thread(s), base and tops, "
          f"base kernel {t.kernel}")
    print(f"  scratch (bench/fleet.py batched job)   {_ms([s for s, _, _ in sc], '.2f')} s   member top-1 "
          f"{_ms([a for _, a, _ in sc], '.2f')} %   load {_ms([x for _, _, x in sc])}")
    print(f"  shared base, trained in the job        {_ms([s for s, _, _ in rows['base']], '.2f')} s   base top-1 "
          f"{_ms([a for _, a, _ in rows['base']], '.2f')} % (all test clips)   load "
          f"{_ms([x for _, _, x in rows['base']])}")
    for p in pefts:
        total = [a[0] + b[0] for a, b in zip(rows[p], rows["base"])]
        sp = [a[0] / b for a, b in zip(sc, total)]
        alone = [a[0] / b[0] for a, b in zip(sc, rows[p])]
        gap = [b[1] - a[1] for a, b in zip(sc, rows[p])]
        ok = statistics.mean(sp) >= 8 and statistics.mean(gap) >= 0
        print(f"  specialize ({p:<6})                    {_ms([s for s, _ in rows[p]], '.2f')} s   member top-1 "
              f"{_ms([a for _, a in rows[p]], '.2f')} %   top-1 vs scratch {statistics.mean(gap):+.2f} points")
        print(f"  base + specialization ({p})          {_ms(total, '.2f')} s   speedup over scratch {_ms(sp, '.2f')}x "
              f"(specialization alone: {_ms(alone)}x)   goal >= 8x at equal or better top-1: "
              f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
