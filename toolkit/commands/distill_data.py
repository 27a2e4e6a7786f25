"""`edgetk distill-data RECIPE --per-class N -o OUT`: distil the recipe's training set into N synthetic samples per class."""
from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("distill-data", help="distil a recipe's training set into a few synthetic samples per class")
    p.add_argument("recipe", type=Path, help="recipe TOML of a classification task, e.g. models/image-digits.toml")
    p.add_argument("--per-class", type=int, default=10, metavar="N", help="synthetic samples per class (default 10)")
    p.add_argument("--method", default="dm", help="dm: distribution matching (default, cheap) | gm: gradient matching | "
                   "recover: SRe2L (a model trained on the real set) | kmeans: each class' k-means centroids")
    p.add_argument("--iterations", type=int, default=0, help="optimisation steps (0 = the method's default)")
    p.add_argument("--nets", default="random", help="dm: random (fresh random nets, default) | trained (per-epoch "
                   "snapshots of a model trained on the real set first)")
    p.add_argument("--init", default="real", help="start: real (random real samples of each class, default) | centroids "
                   "(their k-means centroids; one per class = the class mean)")
    p.add_argument("--smooth", type=int, default=1, metavar="F", help="dm: move the samples on a grid F times coarser (default 1)")
    p.add_argument("--soft-labels", type=float, default=0.0, metavar="T", help="store soft labels: a model trained on the "
                   "real set labels each sample, softmax(logits / T); edgetk train on OUT/recipe.toml uses them (0 = hard)")
    p.add_argument("--width", type=float, default=0.0, help="width of the networks it matches under (0 = model.width)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial samples and the random networks")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override, e.g. model.width=0.5 (repeatable)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (synthetic.npz, samples.png, recipe.toml, distill.json)")
    return p


def run(args: argparse.Namespace) -> int:
    from toolkit.data import load_dataset
    from toolkit.recipe import load_recipe
    from toolkit.train.distill_data import DistillDataConfig, distill, write

    cfg = DistillDataConfig(per_class=args.per_class, method=args.method, iterations=args.iterations,
                            width=args.width, seed=args.seed, nets=args.nets, smooth=args.smooth, soft=args.soft_labels,
                            init=args.init)
    cfg.resolved()                                   # bad options fail before the data is loaded
    recipe = load_recipe(args.recipe, args.overrides)
    data = load_dataset(recipe)
    syn = distill(recipe, data, cfg)
    record = write(args.out, recipe, data, syn)
    if args.json:
        emit({"command": "distill-data", "out": str(args.out), **record})
    else:
        print(f"{recipe.task}: {record['n_synthetic']} synthetic samples ({record['method']}, {record['per_class']} per class, "
              f"{record['iterations']} iterations, {record['seconds']:.0f} s) -> {args.out}/synthetic.npz\n"
              f"  picture: {args.out}/samples.png; train on it: edgetk train {args.out}/recipe.toml -o RUN_DIR")
    return 0
