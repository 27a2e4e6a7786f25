"""`edgetk info RECIPE`: the dataset and the model's per-layer shapes, parameters and MACs."""
from __future__ import annotations

import argparse
from pathlib import Path
from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="show a recipe's dataset and per-layer shapes, params and MACs")
    p.add_argument("recipe", type=Path, help="recipe TOML (models/*.toml) or a run folder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override, e.g. model.width=0.5 (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from toolkit.data import load_dataset
    from toolkit.nn import build_model
    from toolkit.nn.profile import profile_model
    from toolkit.recipe import load_recipe

    path = args.recipe / "recipe.toml" if args.recipe.is_dir() else args.recipe
    recipe = load_recipe(path, args.overrides)
    data = load_dataset(recipe)
    torch.manual_seed(recipe.train.seed)
    prof = profile_model(build_model(recipe, data), data.input_shape)
    if args.json:
        emit({"task": recipe.task, "data": data.summary(), "labels": data.labels, **prof.to_dict()})
        return 0
    print(f"task   {recipe.task}: {recipe.description}")
    print(f"data   {data.summary()}")
    print(f"model  {recipe.model.arch} (width {recipe.model.width})\n")
    print(prof.table())
    return 0
