"""Distillation on kws-digits: a tiny student taught by a larger teacher vs the same student from scratch.

One teacher (models/kws-digits-distill.toml: teacher_width) is trained once; for each seed the student
trains twice with the same data, schedule and initialisation: plain cross-entropy (baseline) and the
distillation loss. Prints mean +- std of test top-1 over the seeds, side by side.
Usage: .venv/bin/python bench/distill.py [--seeds 3] [--epochs 20] [--teacher-epochs 20]

--labels-per-class K: the few-label regime ([distill] labels_per_class): per seed, K labelled clips per class
(the rest unlabelled); the baseline student trains on the labelled clips alone; the teacher (teacher_width)
trains on the same labelled clips, then the student trains on every training clip with the teacher's soft
targets (hard labels on the labelled ones). Both small-set runs get at least 300 steps (training_schedule).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from toolkit.data import load_dataset  # noqa: E402
from toolkit.recipe import load_recipe  # noqa: E402
from toolkit.specialize.distill import kd_loss  # noqa: E402
from toolkit.train import load_run, train  # noqa: E402

QUIET = {"progress": lambda row: None}


def top1(run: Path) -> float:
    """Test top-1 (%) of a finished run."""
    return 100 * json.loads((run / "metrics.json").read_text())["value"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--teacher-epochs", type=int, default=20)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override, e.g. distill.alpha=0.5")
    ap.add_argument("--labels-per-class", type=int, default=0, help="few-label regime (see the docstring)")
    args = ap.parse_args()
    if args.labels_per_class:
        return few_labels_main(args)
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "models" / "kws-digits-distill.toml",
                         [f"train.epochs={args.epochs}", *args.overrides])
    cfg = recipe.distill
    data = load_dataset(recipe)
    t0 = time.time()
    plain, taught = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t_recipe = recipe.replace(model=dataclasses.replace(recipe.model, width=cfg.teacher_width), extra={},
                                  train=dataclasses.replace(recipe.train, epochs=args.teacher_epochs))
        teacher = load_run(train(t_recipe, work / "teacher", data=data, **QUIET))
        for seed in range(args.seeds):
            r = recipe.replace(train=dataclasses.replace(recipe.train, seed=seed))
            plain.append(top1(train(r, work / f"scratch-{seed}", data=data, **QUIET)))
            loss = kd_loss(teacher.model, cfg, r.train.label_smoothing)
            taught.append(top1(train(r, work / f"kd-{seed}", data=data, loss_fn=loss, **QUIET)))
            print(f"seed {seed}: scratch {plain[-1]:.1f}%  distilled {taught[-1]:.1f}%", flush=True)
    mp, sp, mt, st = statistics.mean(plain), statistics.pstdev(plain), statistics.mean(taught), statistics.pstdev(taught)
    print(f"kws-digits distillation, {args.seeds} seeds, {time.time() - t0:.0f} s; teacher width {cfg.teacher_width}: "
          f"{100 * teacher.metrics['value']:.1f}% top-1, {teacher.metrics['params']:,} params")
    print(f"  student from scratch (baseline)  top-1 {mp:5.1f} +- {sp:.1f} %  (width {recipe.model.width})")
    print(f"  student distilled (T={cfg.temperature}, alpha={cfg.alpha})  top-1 {mt:5.1f} +- {st:.1f} %   "
          f"delta {mt - mp:+.1f} points")
    return 0


def few_labels_main(args: argparse.Namespace) -> int:
    """The few-label regime: student on K labels per class vs the same student taught on all clips."""
    from toolkit.specialize.distill import unlabel
    from toolkit.specialize.pretrain import few_label_index
    from toolkit.train.distill_data import fit, training_schedule
    from toolkit.data.base import subset

    recipe = load_recipe(Path(__file__).resolve().parent.parent / "models" / "kws-digits-distill.toml",
                         [f"train.epochs={args.epochs}", f"distill.labels_per_class={args.labels_per_class}", *args.overrides])
    cfg, data, t0 = recipe.distill, load_dataset(recipe), time.time()
    plain, taught, teachers = [], [], []
    for seed in range(args.seeds):
        r = recipe.replace(train=dataclasses.replace(recipe.train, seed=seed), extra={})
        keep = few_label_index(data, cfg.labels_per_class, seed)
        labelled = subset(data, keep, np.arange(len(data.x_test)))
        small = training_schedule(r, len(keep))
        plain.append(100 * fit(small, labelled)[1])
        wide = small.replace(model=dataclasses.replace(r.model, width=cfg.teacher_width))
        teacher, t_value = fit(wide, labelled)
        teachers.append(100 * t_value)
        taught.append(100 * fit(r, unlabel(data, keep), kd_loss(teacher, cfg, r.train.label_smoothing))[1])
        print(f"seed {seed}: {len(keep)} labels; student alone {plain[-1]:.1f}%  teacher (width {cfg.teacher_width}) "
              f"{teachers[-1]:.1f}%  student taught on {len(data.x_train)} clips {taught[-1]:.1f}%", flush=True)
    mp, sp, mt, st = statistics.mean(plain), statistics.pstdev(plain), statistics.mean(taught), statistics.pstdev(taught)
    print(f"kws-digits few-label distillation, {args.labels_per_class} labels per class, {args.seeds} seeds, "
          f"{time.time() - t0:.0f} s; teacher width {cfg.teacher_width}: {statistics.mean(teachers):.1f} +- "
          f"{statistics.pstdev(teachers):.1f} %")
    print(f"  student on the labelled clips alone (baseline)  top-1 {mp:5.1f} +- {sp:.1f} %  (width {recipe.model.width})")
    print(f"  student taught on all clips (T={cfg.temperature}, alpha={cfg.alpha})  top-1 {mt:5.1f} +- {st:.1f} %   "
          f"delta {mt - mp:+.1f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
