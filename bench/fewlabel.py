"""Few labels on kws-digits: compression pretraining + fine-tuning vs training from scratch.

Both arms see the same 10 labelled clips per class (100 clips) with the same schedule and seeds; the
pretrained arm first learns to reconstruct masked MFCC frames from all 2,700 training clips with
their labels thrown away. Prints mean +- std of test top-1 over the seeds, side by side.
Usage: .venv/bin/python bench/fewlabel.py [--seeds 3] [--pretrain-epochs 20] [--epochs 60]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from toolkit.data import load_dataset  # noqa: E402
from toolkit.nn import build_model  # noqa: E402
from toolkit.recipe import PretrainConfig, load_recipe  # noqa: E402
from toolkit.specialize.pretrain import few_labels, pretrain_encoder  # noqa: E402
from toolkit.train import train  # noqa: E402


def one(recipe, data, seed: int, pretrain: PretrainConfig | None, work: Path) -> float:
    """Test top-1 (%) of one arm for one seed."""
    r = recipe.replace(train=dataclasses.replace(recipe.train, seed=seed))
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = build_model(r, data)
    if pretrain is not None:
        pretrain_encoder(model, data.x_train, pretrain, r.train)
    labelled = few_labels(data, 10, seed)
    out = train(r, work / f"{'pre' if pretrain else 'scratch'}-{seed}", model=model, data=labelled,
                progress=lambda row: None)
    import json

    return 100 * json.loads((out / "metrics.json").read_text())["value"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--pretrain-epochs", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--objective", default="masked")
    args = ap.parse_args()
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "models" / "kws-digits-pretrain.toml",
                         [f"train.epochs={args.epochs}", f"pretrain.epochs={args.pretrain_epochs}",
                          f"pretrain.objective={args.objective}"])
    data = load_dataset(recipe)
    scratch, pre = [], []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            scratch.append(one(recipe, data, seed, None, Path(tmp)))
            pre.append(one(recipe, data, seed, recipe.pretrain, Path(tmp)))
            print(f"seed {seed}: scratch {scratch[-1]:.1f}%  pretrain+finetune {pre[-1]:.1f}%", flush=True)
    ms, ss = statistics.mean(scratch), statistics.pstdev(scratch)
    mp, sp = statistics.mean(pre), statistics.pstdev(pre)
    print(f"kws-digits, 10 labels/class, {len(data.x_train)} unlabelled clips, {args.seeds} seeds, "
          f"{time.time() - t0:.0f} s")
    print(f"  scratch (baseline)      top-1 {ms:5.1f} +- {ss:.1f} %")
    print(f"  pretrain + fine-tune    top-1 {mp:5.1f} +- {sp:.1f} %   delta {mp - ms:+.1f} points (goal >= +5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
