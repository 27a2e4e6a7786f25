"""`edgetk train RECIPE`: train a task recipe into a run folder (resumable after a kill)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import EdgetkError

if TYPE_CHECKING:
    from toolkit.recipe import Recipe


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a recipe (models/*.toml) into a run folder")
    p.add_argument("recipe", nargs="?", type=Path, help="recipe TOML, e.g. models/imu-motions.toml")
    p.add_argument("-o", "--out", type=Path, default=None, help="run folder (default: runs/<task>-<timestamp>)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue an interrupted run from its last checkpoint (uses RUN_DIR/recipe.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override, e.g. train.epochs=3 (repeatable)")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout instead of the progress display")
    p.add_argument("--fit-target", default=None, metavar="TARGET",
                   help="set model.width to the widest that fits TARGET's flash/RAM/MACs budget (targets/*.toml)")
    p.add_argument("--fit-latency-ms", type=float, default=1000.0, metavar="MS",
                   help="latency budget behind the MACs limit of --fit-target (default 1000)")
    return p


def run(args: argparse.Namespace) -> int:
    out, task = _resume(args) if args.resume is not None else _new(args)
    if not args.json and (out / "metrics.json").is_file():
        import json

        m = json.loads((out / "metrics.json").read_text())
        print(f"{task}: {m['metric']} {m['value']:.4f}, {m['params']:,} params, {m['macs']:,} MACs -> {out}")
    return 0


def _resume(args: argparse.Namespace) -> tuple[Path, str]:
    from toolkit.recipe import load_recipe

    if args.overrides or args.out or args.fit_target:
        raise EdgetkError("--resume continues a run with its stored recipe; --set, -o and --fit-target do not apply",
                          fix=f"run `edgetk train --resume {args.resume}` alone")
    if not (args.resume / "recipe.toml").is_file():
        what = "does not exist" if not args.resume.exists() else "holds no recipe.toml (the run never started)"
        raise EdgetkError(f"nothing to resume: {args.resume} {what}",
                          fix=f"start the run with `edgetk train RECIPE -o {args.resume}`")
    recipe = load_recipe(args.resume / "recipe.toml")
    if args.recipe is not None and load_recipe(args.recipe).task != recipe.task:
        raise EdgetkError(f"{args.recipe} is not the recipe of {args.resume} (task {recipe.task})",
                          fix=f"run `edgetk train --resume {args.resume}` alone")
    return _run(recipe, args.resume, args.json, resume=True), recipe.task


def _new(args: argparse.Namespace) -> tuple[Path, str]:
    from toolkit.recipe import load_recipe

    if args.recipe is None:
        raise EdgetkError("no recipe given", fix="edgetk train models/imu-motions.toml (or --resume RUN_DIR)")
    recipe = load_recipe(args.recipe, args.overrides)
    if args.fit_target:
        from toolkit.specialize.fit import apply_fit

        recipe = apply_fit(recipe, args.fit_target, args.fit_latency_ms)
    out = args.out or Path("runs") / f"{recipe.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    return _run(recipe, out, args.json), recipe.task


def _run(recipe: Recipe, out: Path, json_progress: bool, resume: bool = False) -> Path:
    """Plain training, or the job of a [pretrain]/[distill]/[finetune]/[fleet] recipe; new or resumed."""
    from toolkit.specialize import is_special, run_recipe
    from toolkit.train import train

    return (run_recipe if is_special(recipe) else train)(recipe, out, json_progress=json_progress, resume=resume)
