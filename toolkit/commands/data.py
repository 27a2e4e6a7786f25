"""`edgetk data RECIPE`: the recipe's data per class and split (counts, durations/shapes, rates, groups) and every problem."""
from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("data", help="check a recipe's data: counts per class and split, rates, groups, every problem")
    p.add_argument("recipe", type=Path, help="recipe TOML, or a run folder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override, e.g. data.root=recordings (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    from toolkit.data.report import data_report, format_report
    from toolkit.recipe import load_recipe

    path = args.recipe / "recipe.toml" if args.recipe.is_dir() else args.recipe
    recipe = load_recipe(path, args.overrides)
    report = data_report(recipe.data, recipe.extra.get("frontend"), recipe.path)
    if args.json:
        emit(report)
    else:
        print(format_report(report))
    return 2 if report["errors"] else 0
