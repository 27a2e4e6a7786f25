"""Distillation on kws-digits: a tiny student taught by a larger teacher vs the same student from scratch.

One teacher (models/kws-digits-distill.toml: teacher_width) is trained once; for each seed the student
trains twice with the same data, schedule and initialisation: plain cross-entropy (baseline) and the
distillation loss. Prints mean +- std of test top-1 over the seeds, side by side.
Usage: .venv/bin/python bench/distill.py [--seeds 3] [--epochs 20] [--teacher-epochs 20]
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
    args = ap.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
