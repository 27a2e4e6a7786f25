"""Fuzz the recipe loader (issue #14): the shipped recipes with a field set to a special value (in the TOML or as a
--set override: 0, -1, 1e20, nan, inf, 2^63, strings, lists, tables...), lines dropped or duplicated, and bytes
mutated (non-UTF-8, cuts).

Property: every input loads or is refused with one EdgetkError; an accepted recipe holds only finite numbers inside
recipe.BOUNDS and survives the to_toml round trip. Prints inputs tried, failures (reproducers under --out) and the
slowest input, beside the baseline: the unmutated recipes through the same check.

    python bench/fuzz_recipes.py [--n 1000000 | --seconds 600] [--seed 0]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.fuzz import bench_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(bench_main("recipe", default_seconds=60))
