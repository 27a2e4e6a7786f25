"""`edgetk train RECIPE`: train a task recipe into a run folder (resumable after a kill)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import EdgetkError

if TYPE_CHECKING:
    from toolkit.recipe import Recipe
    from toolkit.specialize.fleet import StackRunner


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a recipe (models/*.toml) into a run folder")
    p.add_argument("recipe", nargs="*", type=Path,
                   help="recipe TOML, e.g. models/imu-motions.toml; several run one after another (at once with "
                   "--cluster), each into OUT/<recipe file name>")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="run folder (default: runs/<task>-<timestamp>); with several recipes their parent folder "
                   "(default: runs/<timestamp>)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue an interrupted run from its last checkpoint (uses RUN_DIR/recipe.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override, e.g. train.epochs=3 (repeatable)")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout instead of the progress display")
    p.add_argument("--fit-target", default=None, metavar="TARGET",
                   help="set model.width to the widest that fits TARGET's flash/RAM/MACs budget (targets/*.toml)")
    p.add_argument("--fit-latency-ms", type=float, default=1000.0, metavar="MS",
                   help="latency budget behind the MACs limit of --fit-target (default 1000)")
    p.add_argument("--cluster", default=None, metavar="auto|ADDRESS",
                   help="train on a running Ray cluster: a fleet's stacks and each recipe as Ray tasks (auto: the "
                   "cluster `ray start` started on this machine, or $RAY_ADDRESS; needs pip install 'edgetk[cluster]')")
    return p


def run(args: argparse.Namespace) -> int:
    runs = _resume(args) if args.resume is not None else _new(args)
    if args.cluster:
        from toolkit.cluster import train_all

        train_all(_run, runs, args.cluster, args.json, resume=args.resume is not None)
    else:
        for recipe, out in runs:
            _run(recipe, out, args.json, resume=args.resume is not None)
    for recipe, out in runs:
        if not args.json and (out / "metrics.json").is_file():
            import json

            m = json.loads((out / "metrics.json").read_text())
            print(f"{recipe.task}: {m['metric']} {m['value']:.4f}, {m['params']:,} params, {m['macs']:,} MACs -> {out}")
    return 0


def _resume(args: argparse.Namespace) -> list[tuple[Recipe, Path]]:
    from toolkit.recipe import load_recipe

    if args.overrides or args.out or args.fit_target:
        raise EdgetkError("--resume continues a run with its stored recipe; --set, -o and --fit-target do not apply",
                          fix=f"run `edgetk train --resume {args.resume}` alone")
    if not (args.resume / "recipe.toml").is_file():
        what = "does not exist" if not args.resume.exists() else "holds no recipe.toml (the run never started)"
        raise EdgetkError(f"nothing to resume: {args.resume} {what}",
                          fix=f"start the run with `edgetk train RECIPE -o {args.resume}`")
    recipe = load_recipe(args.resume / "recipe.toml")
    if len(args.recipe) > 1 or (args.recipe and load_recipe(args.recipe[0]).task != recipe.task):
        raise EdgetkError(f"{' '.join(map(str, args.recipe))} is not the recipe of {args.resume} (task {recipe.task})",
                          fix=f"run `edgetk train --resume {args.resume}` alone")
    return [(recipe, args.resume)]


def _new(args: argparse.Namespace) -> list[tuple[Recipe, Path]]:
    from toolkit.recipe import load_recipe

    if not args.recipe:
        raise EdgetkError("no recipe given", fix="edgetk train models/imu-motions.toml (or --resume RUN_DIR)")
    recipes = [load_recipe(path, args.overrides) for path in args.recipe]
    if args.fit_target:
        from toolkit.specialize.fit import apply_fit

        recipes = [apply_fit(r, args.fit_target, args.fit_latency_ms) for r in recipes]
    stamp = time.strftime('%Y%m%d-%H%M%S')
    if len(recipes) == 1:
        return [(recipes[0], args.out or Path("runs") / f"{recipes[0].task}-{stamp}")]
    names = [path.stem for path in args.recipe]
    if len(set(names)) < len(names):
        given = " ".join(map(str, args.recipe))
        raise EdgetkError(f"recipes with the same file name would share a run folder: {given}",
                          fix="give each recipe file its own name (the runs go to OUT/<recipe file name>)")
    return [(r, (args.out or Path("runs") / stamp) / name) for r, name in zip(recipes, names)]


def _run(recipe: Recipe, out: Path, json_progress: bool, resume: bool = False,
         stacks: StackRunner | None = None) -> Path:
    """Plain training, or the job of a [pretrain]/[distill]/[finetune]/[fleet] recipe; new or resumed.
    `stacks`: where a batched fleet's stacks train (toolkit.cluster), else this machine."""
    from toolkit.specialize import is_special, run_recipe
    from toolkit.train import train

    if is_special(recipe):
        return run_recipe(recipe, out, json_progress=json_progress, resume=resume, stacks=stacks)
    return train(recipe, out, json_progress=json_progress, resume=resume)
