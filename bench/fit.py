"""Fit-to-target: the chosen width per task and target, and the estimates checked against real exports.

Part 1 (no training): for every task recipe and every microcontroller target, the recipe's own width
(baseline) and whether it fits, next to the width --fit-target picks and the limit that binds.
Part 2: each task at its recipe width is trained briefly, exported to int8 TFLite and compiled to C by
toolkit.codegen; the fit estimates (activation peak, weight bytes) are printed beside the generated
library's arena and const data. Deterministic: no seeds to average over.
Usage: .venv/bin/python bench/fit.py [--latency-ms 1000] [--no-export]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from toolkit.data import load_dataset  # noqa: E402
from toolkit.nn import build_model  # noqa: E402
from toolkit.recipe import load_recipe  # noqa: E402
from toolkit.specialize.fit import binding_limit, budget_for, fit_width, footprint  # noqa: E402
from toolkit.targets import load_targets  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("kws-digits", "imu-motions", "ecg-anomaly", "image-digits")


def part1(latency_ms: float) -> None:
    """Recipe width vs fitted width for every task x microcontroller target."""
    targets = {n: t for n, t in load_targets().items() if t.kind in ("board", "qemu")}
    print(f"{'task':13s} {'target':16s} {'recipe width (baseline)':28s} {'fitted width':13s} binds  "
          f"flash / RAM / MACs of the fitted model")
    for task in TASKS:
        recipe = load_recipe(ROOT / "models" / f"{task}.toml")
        data = load_dataset(recipe)
        for name, target in sorted(targets.items()):
            budget = budget_for(target, latency_ms)
            torch.manual_seed(0)
            base = footprint(build_model(recipe, data), data.input_shape, budget)
            over = binding_limit(base, budget)
            res = fit_width(recipe, data, budget)
            f = res.footprint
            print(f"{task:13s} {name:16s} {recipe.model.width:<5} {'fits' if not over else 'over ' + over:22s} "
                  f"{res.width:<13} {res.binding:6s} {f.flash_bytes:,} B / {f.ram_bytes:,} B / {f.macs:,}")


def part2() -> None:
    """Estimates vs the generated C library of a briefly trained, exported model."""
    from toolkit.codegen import generate
    from toolkit.export import export_run
    from toolkit.specialize.fit import FitBudget
    from toolkit.train import train

    zero = FitBudget(0, 0, 0, code_bytes=0, static_ram_bytes=0)
    print(f"\n{'task':13s} {'est. activation peak':>21s} {'codegen arena + I/O':>20s} "
          f"{'est. weight bytes':>18s} {'codegen const data':>19s}")
    with tempfile.TemporaryDirectory() as tmp:
        for task in TASKS:
            recipe = load_recipe(ROOT / "models" / f"{task}.toml", ["train.epochs=1"])
            data = load_dataset(recipe)
            run = train(recipe, Path(tmp) / task, progress=lambda row: None)
            torch.manual_seed(0)
            est = footprint(build_model(recipe, data), data.input_shape, zero)
            bundle = export_run(run, Path(tmp) / f"{task}-bundle", calib=64)
            manifest = json.loads((bundle / "manifest.json").read_text())
            io = _nbytes(manifest["input"]["shape"]) + _nbytes(manifest["output"]["shape"])
            c = generate(bundle / "model_int8.tflite", Path(tmp) / f"{task}-c")
            print(f"{task:13s} {est.arena_bytes:21,d} {c.arena_size + io:20,d} {est.flash_bytes:18,d} {c.flash_estimate:19,d}")


def _nbytes(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-ms", type=float, default=1000.0)
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    part1(args.latency_ms)
    if not args.no_export:
        part2()
    return 0


if __name__ == "__main__":
    sys.exit(main())
