"""Dataset distillation: a fresh model trained on N synthetic samples per class vs N random real ones vs the full set.

For each task and seed: `edgetk distill-data`'s synthesis (toolkit/train/distill_data.py, distribution matching)
at the recipe's width makes N samples per class; a fresh model trains on them, and the same model with the same
schedule (training_schedule: at least 300 steps) trains on N random real samples per class (the samples the
synthesis started from); both at the synthesis width and at another width (--cross-width). The full training set
trains the recipe as is; that model (width as in the recipe, same seed) is also the teacher of the soft-label arms:
the synthetic set with its soft labels (softmax(logits / --soft), what `distill-data --soft-labels T` stores) and,
the ablation, the random real samples with the same teacher's soft labels, so a gain can be told apart from the
labels' share of it. Test top-1 on the real test set, mean +- std over the seeds, printed side by side.
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


ARMS = ("synthetic", "synthetic_soft", "random_real", "random_real_soft")


def run_task(task: str, args: argparse.Namespace) -> list[dict]:
    recipe = load_recipe(ROOT / TASKS[task])
    data = load_dataset(recipe)
    w0, w1 = recipe.model.width, args.cross_width
    rows = []
    for seed in range(args.seeds):
        full, teacher = top1(recipe, data, w0, seed, model=True)
        rows.append({"task": task, "seed": seed, "n": "full", "width": w0, "full": full})
        print(f"{task} seed {seed}: full training set ({len(data.x_train)}) width {w0}: {full:.1f}%", flush=True)
        for n in args.per_class:
            cfg = DistillDataConfig(per_class=n, seed=seed, iterations=args.iterations.get(task, 0), method=args.method,
                                    nets=args.nets, soft=args.soft)
            syn = distill(recipe, data, cfg, teacher=teacher)
            x_real, y_real = real_init(data, n, seed)
            sched = training_schedule(recipe, len(syn.x))
            sets = {"synthetic": with_train_set(data, syn.x, syn.y),
                    "synthetic_soft": with_train_set(data, syn.x, syn.y, syn.soft),
                    "random_real": with_train_set(data, x_real, y_real),
                    "random_real_soft": with_train_set(data, x_real, y_real, soft_labels(teacher, x_real, args.soft))}
            for w in (w0, w1):
                got = {arm: top1(sched, d, w, seed) for arm, d in sets.items()}
                rows.append({"task": task, "seed": seed, "n": n, "width": w, "synth_width": w0, **got,
                             "synth_seconds": syn.meta["seconds"], "iterations": syn.meta["iterations"]})
                print(f"{task} seed {seed} N={n} trained at width {w} (synthesized at {w0}): "
                      + "  ".join(f"{arm} {v:.1f}%" for arm, v in got.items())
                      + f"  ({syn.meta['seconds']:.0f} s synthesis)", flush=True)
    return rows


def ms(v: list[float]) -> str:
    return f"{statistics.mean(v):5.1f} +- {statistics.pstdev(v):4.1f}"


def table(rows: list[dict], seeds: int) -> str:
    """Markdown table: per task, N and training width: the four arms, the gains over random real, full set."""
    out = ["| task | N/class | trained at width (synthesized at) | synthetic | synthetic + soft labels | random real | "
           "random real + soft labels (ablation) | gain synthetic | gain synthetic + soft | full set |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in rows):
        full = [r["full"] for r in rows if r["task"] == task and r["n"] == "full"]
        keys = dict.fromkeys((r["n"], r["width"], r["synth_width"]) for r in rows if r["task"] == task and r["n"] != "full")
        for n, w, sw in keys:
            sel = [r for r in rows if r["task"] == task and r["n"] == n and r["width"] == w]
            v = {arm: [r[arm] for r in sel] for arm in ARMS}
            gain = {arm: [a - b for a, b in zip(v[arm], v["random_real"])] for arm in ("synthetic", "synthetic_soft")}
            out.append(f"| {task} | {n} | {w} ({sw}) | " + " | ".join(ms(v[arm]) for arm in ARMS)
                       + f" | {ms(gain['synthetic'])} | {ms(gain['synthetic_soft'])} | {ms(full)} |")
    return "\n".join(out) + f"\n\n(test top-1 %, mean +- std over {seeds} seeds)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=[*TASKS, "all"], default="all")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--per-class", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--cross-width", type=float, default=0.5, help="the other width models train at")
    ap.add_argument("--method", default="dm", help="dm | gm")
    ap.add_argument("--nets", default="random", help="dm: random | trained")
    ap.add_argument("--soft", type=float, default=1.0, help="temperature of the soft-label arms (default 1)")
    ap.add_argument("--iterations", type=json.loads, default={}, help='per task, e.g. {"kws-digits": 150}')
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    t0 = time.time()
    rows = [row for task in (TASKS if args.task == "all" else [args.task]) for row in run_task(task, args)]
    print(f"\ndataset distillation ({args.method}, nets {args.nets}, soft labels at temperature {args.soft}), "
          f"{time.time() - t0:.0f} s\n" + table(rows, args.seeds))
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
