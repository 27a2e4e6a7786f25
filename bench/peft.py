"""PEFT on kws-digits: a base trained on 4 speakers, adapted to the other 2 with every fine-tuning mode.

Per mode: test top-1 on the 2 new speakers (mean +- std over seeds), trainable parameters, and for the
mergeable modes the max |merged - unmerged| output difference and the deployed params/MACs next to the
base's. The baseline is the base model without adaptation. Adapters cannot merge: their extra
params/MACs are what they cost on the device.
Usage: .venv/bin/python bench/peft.py [--seeds 3] [--base-epochs 15] [--epochs 10]
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
from toolkit.specialize import run_recipe  # noqa: E402
from toolkit.data.base import select_groups  # noqa: E402
from toolkit.specialize.peft import MODES  # noqa: E402
from toolkit.train import load_run, train  # noqa: E402
from toolkit.train.evaluate import evaluate  # noqa: E402

QUIET = {"progress": lambda row: None}


def adapt(recipe, base_dir: Path, mode: str, out: Path) -> dict:
    """Fine-tune base_dir with one mode; the run's metrics."""
    ft = dataclasses.replace(recipe.finetune, base_run=str(base_dir), mode=mode)
    run_recipe(recipe.replace(extra={"finetune": ft}), out)
    return json.loads((out / "metrics.json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--base-epochs", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "models" / "kws-digits-peft.toml",
                         [f"train.epochs={args.epochs}"])
    new = recipe.data.groups
    full = load_dataset(recipe.replace(data=dataclasses.replace(recipe.data, groups=())))
    old = tuple(sorted(set(full.groups_train.tolist()) - set(new)))
    rows: dict[str, list[dict]] = {m: [] for m in ("base", *MODES)}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            r = recipe.replace(train=dataclasses.replace(recipe.train, seed=seed))
            base_recipe = r.replace(extra={}, train=dataclasses.replace(r.train, epochs=args.base_epochs),
                                    data=dataclasses.replace(r.data, groups=old))
            base_dir = train(base_recipe, Path(tmp) / f"base-{seed}", **QUIET)
            base = load_run(base_dir)
            rows["base"].append({**base.metrics, **evaluate(base.model, select_groups(full, new)),
                                 "trainable_params": 0})
            for mode in MODES:
                rows[mode].append(adapt(r, base_dir, mode, Path(tmp) / f"{mode}-{seed}"))
            print(f"seed {seed}: " + ", ".join(f"{m} {100 * rows[m][-1]['value']:.1f}%" for m in rows), flush=True)
    print(f"kws-digits PEFT: base on {', '.join(old)}; adapted to {', '.join(new)}; {args.seeds} seeds, "
          f"{time.time() - t0:.0f} s")
    print(f"  {'mode':8s} {'top-1 new speakers':>20s} {'trainable':>10s} {'deployed params':>16s} {'MACs':>10s} "
          f"{'max|merged-unmerged|':>21s}")
    for mode, rs in rows.items():
        acc = [100 * x["value"] for x in rs]
        diff = max(x.get("merge_max_abs_diff", float("nan")) for x in rs)
        label = "base (no adaptation, baseline)" if mode == "base" else ""
        merged = "" if mode == "base" else (f"{diff:.1e}" if rs[0].get("merged") else "not mergeable")
        print(f"  {mode:8s} {statistics.mean(acc):12.1f} +- {statistics.pstdev(acc):4.1f} % "
              f"{rs[0]['trainable_params']:10,d} {rs[0]['params']:16,d} {rs[0]['macs']:10,d} {merged:>21s} {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
