"""Dataset distillation: a fresh model trained on N synthetic samples per class vs N random real ones vs the full set.

For each task and seed: `edgetk distill-data`'s synthesis (toolkit/train/distill_data.py, distribution matching)
at the recipe's width makes N samples per class; a fresh model trains on them, and the same model with the same
schedule (training_schedule: at least 300 steps) trains on N random real samples per class (the samples the
synthesis started from); both at the synthesis width and at another width (--cross-width). The full training set
trains the recipe as is; that model (width as in the recipe, same seed) is also the teacher of the soft-label arms:
the synthetic set with its soft labels (softmax(logits / --soft), what `distill-data --soft-labels T` stores) and,
the ablation, the random real samples with the same teacher's soft labels, so a gain can be told apart from the
labels' share of it. Test top-1 on the real test set, mean +- std over the seeds, printed side by side.
--methods dm dm:centroids recover: one pair of synthetic arms per synthesis method (and start: :centroids = the
k-means centroids of each class' samples, k = N, from the random real samples; else the random real samples).
--augment (per task; default kws-digits: shift, noise, mask, gain): `[train] augment` for every small-set arm alike
(synthetic and random real) and the synthesis' siamese augmentation family; the full-set model trains as the
recipe is (no augmentation). image-digits: none by default (its figures stay comparable with earlier runs).
Usage: .venv/bin/python bench/distill_data.py [--task image-digits|kws-digits|all] [--seeds 3] [--per-class 1 10]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.data import load_dataset  # noqa: E402
from toolkit.recipe import load_recipe  # noqa: E402
from toolkit.train.distill_data import (DistillDataConfig, distill, fit, real_init, soft_labels,  # noqa: E402
                                       training_schedule, with_train_set)

ROOT = Path(__file__).resolve().parent.parent
TASKS = {"image-digits": "models/image-digits.toml", "kws-digits": "models/kws-digits.toml"}


def top1(recipe, data, width: float, seed: int, model: bool = False):
    """Test top-1 (%) of a fresh model of the recipe at `width` trained on data (and the model, with model=True)."""
    r = recipe.replace(model=dataclasses.replace(recipe.model, width=width),
                       train=dataclasses.replace(recipe.train, seed=seed))
    net, value = fit(r, data)
    return (100 * value, net) if model else 100 * value


REAL_ARMS = ("random_real", "random_real_soft")
DEFAULT_AUGMENT = {"kws-digits": ["shift", "noise", "mask", "gain"]}


def arms(methods: list[str]) -> tuple[str, ...]:
    """Column names: per method its synthetic set with hard and with soft labels ("synthetic" for dm alone), then real."""
    names = ["synthetic"] if methods == ["dm"] else methods
    return tuple(a for m in names for a in (m, f"{m}_soft")) + REAL_ARMS


def iterations(args: argparse.Namespace, task: str, method: str) -> int:
    v = args.iterations.get(task, 0)
    return int(v.get(method, 0) if isinstance(v, dict) else v)


def run_task(task: str, args: argparse.Namespace) -> list[dict]:
    recipe = load_recipe(ROOT / TASKS[task])
    data = load_dataset(recipe)
    aug = tuple(args.augment.get(task, ()))
    small = recipe.replace(train=dataclasses.replace(recipe.train, augment=aug))   # the small-set arms and synthesis
    w0, w1 = recipe.model.width, args.cross_width
    rows = []
    for seed in range(args.seeds):
        full, teacher = top1(recipe, data, w0, seed, model=True)
        rows.append({"task": task, "seed": seed, "n": "full", "width": w0, "full": full})
        print(f"{task} seed {seed}: full training set ({len(data.x_train)}) width {w0}: {full:.1f}%", flush=True)
        for n in args.per_class:
            x_real, y_real = real_init(data, n, seed)
            sets, seconds = {}, {}
            for spec, name in zip(args.methods, arms(args.methods)[::2]):
                method, _, init = spec.partition(":")
                cfg = DistillDataConfig(per_class=n, seed=seed, iterations=iterations(args, task, method), method=method,
                                        nets=args.nets, soft=args.soft, init=init or "real", **args.options.get(method, {}))
                syn = distill(small, data, cfg, teacher=teacher)
                sets[name] = with_train_set(data, syn.x, syn.y)
                sets[f"{name}_soft"] = with_train_set(data, syn.x, syn.y, syn.soft)
                seconds[name] = {"seconds": syn.meta["seconds"], "iterations": syn.meta["iterations"]}
            sets["random_real"] = with_train_set(data, x_real, y_real)
            sets["random_real_soft"] = with_train_set(data, x_real, y_real, soft_labels(teacher, x_real, args.soft))
            sched = training_schedule(small, len(x_real))
            for w in (w0, w1):
                got = {arm: top1(sched, d, w, seed) for arm, d in sets.items()}
                rows.append({"task": task, "seed": seed, "n": n, "width": w, "synth_width": w0, **got,
                             "synthesis": seconds, "augment": list(aug)})
                print(f"{task} seed {seed} N={n} trained at width {w} (synthesized at {w0}, augment {list(aug)}): "
                      + "  ".join(f"{arm} {v:.1f}%" for arm, v in got.items())
                      + "  (synthesis " + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in seconds.items()) + ")",
                      flush=True)
    return rows


def ms(v: list[float]) -> str:
    return f"{statistics.mean(v):5.1f} +- {statistics.pstdev(v):4.1f}"


def table(rows: list[dict], seeds: int, names: tuple[str, ...]) -> str:
    """Markdown table: per task, N and training width: the arms, each synthetic arm's gain over random real, full set."""
    syn = [a for a in names if a not in REAL_ARMS]
    out = ["| task | N/class | trained at width (synthesized at) | " + " | ".join(names) + " | "
           + " | ".join(f"gain {a}" for a in syn) + " | full set |",
           "|---" * (4 + len(names) + len(syn)) + "|"]
    for task in dict.fromkeys(r["task"] for r in rows):
        full = [r["full"] for r in rows if r["task"] == task and r["n"] == "full"]
        keys = dict.fromkeys((r["n"], r["width"], r["synth_width"]) for r in rows if r["task"] == task and r["n"] != "full")
        for n, w, sw in keys:
            sel = [r for r in rows if r["task"] == task and r["n"] == n and r["width"] == w]
            v = {arm: [r[arm] for r in sel] for arm in names}
            gain = {arm: [a - b for a, b in zip(v[arm], v["random_real"])] for arm in syn}
            out.append(f"| {task} | {n} | {w} ({sw}) | " + " | ".join(ms(v[arm]) for arm in names)
                       + " | " + " | ".join(ms(gain[a]) + " (" + " / ".join(f"{g:+.1f}" for g in gain[a]) + ")" for a in syn)
                       + f" | {ms(full)} |")
    return "\n".join(out) + f"\n\n(test top-1 %, mean +- std over {seeds} seeds)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=[*TASKS, "all"], default="all")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--per-class", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--cross-width", type=float, default=0.5, help="the other width models train at")
    ap.add_argument("--methods", nargs="+", default=["dm"], help="dm | gm | recover, each optionally :centroids (start from the "
                    "k-means centroids); one pair of synthetic arms each, e.g. dm dm:centroids")
    ap.add_argument("--augment", type=json.loads, default=DEFAULT_AUGMENT,
                    help='per task, the small-set arms\' [train] augment, e.g. {"kws-digits": ["shift", "noise"]}')
    ap.add_argument("--nets", default="random", help="dm: random | trained")
    ap.add_argument("--soft", type=float, default=1.0, help="temperature of the soft-label arms (default 1)")
    ap.add_argument("--iterations", type=json.loads, default={},
                    help='per task (and method), e.g. {"kws-digits": 150} or {"kws-digits": {"dm": 150, "recover": 500}}')
    ap.add_argument("--options", type=json.loads, default={},
                    help='per method, more DistillDataConfig fields, e.g. {"recover": {"lr": 0.01}}')
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    t0 = time.time()
    rows = [row for task in (TASKS if args.task == "all" else [args.task]) for row in run_task(task, args)]
    print(f"\ndataset distillation ({' '.join(args.methods)}, nets {args.nets}, soft labels at temperature {args.soft}, "
          f"augment {args.augment}, options {args.options}), {time.time() - t0:.0f} s\n" + table(rows, args.seeds, arms(args.methods)))
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
