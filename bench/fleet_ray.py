"""Fleet on Ray: the same fleet job on a 1-node and a 2-node local Ray cluster (1 CPU each) vs local workers.

One recipe (models/kws-digits-fleet.toml, --members/--epochs/--stack set here), run the way `edgetk train`
runs it: (a) on this machine in `[fleet] workers = --workers` forked processes (the local job, the baseline);
(b) `--cluster` on a local cluster of one node (1 CPU: the stacks as Ray tasks one after another); (c) on a
cluster of two nodes (1 CPU each, separate `ray start` processes on 127.0.0.1). Clusters are started by this
script (toolkit.cluster.local_cluster) and killed after each configuration. Per run: the wall time of the
whole job (data, training, member runs) and fleet.json's `seconds` (the training; for the clusters task
submission, worker start and the transfers included), the ratios, and whether every member has the local
job's bits. For the fleet's ceiling on this machine see bench/fleet_ceiling.py (bench/RESULTS.md: 3.6x on 2
cores against one model after another, 7.92 vs 4.36 ms per member-step).
Usage: .venv/bin/python bench/fleet_ray.py [--members 16] [--epochs 5] [--stack 4] [--workers 2] [--reps 2]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.cluster import local_cluster, train_all  # noqa: E402
from toolkit.commands.train import _run  # noqa: E402
from toolkit.recipe import Recipe, load_recipe  # noqa: E402


def job(recipe: Recipe, out: Path, address: str | None) -> tuple[float, float]:
    """Run the fleet job into out, locally (address None) or on the cluster; (wall seconds, fleet.json seconds)."""
    t0 = time.perf_counter()
    if address is None:
        _run(recipe, out, False)
    else:
        train_all(_run, [(recipe, out)], address, False)
    wall = time.perf_counter() - t0
    return wall, json.loads((out / "fleet.json").read_text())["seconds"]


def same_bits(a: Path, b: Path) -> tuple[int, int]:
    """(members whose model.safetensors bytes are equal, members) between two fleet folders."""
    names = [m["name"] for m in json.loads((a / "fleet.json").read_text())["members"]]
    same = sum((a / n / "model.safetensors").read_bytes() == (b / n / "model.safetensors").read_bytes() for n in names)
    return same, len(names)


def _stat(xs: list[float]) -> str:
    return f"{statistics.mean(xs):6.1f} +- {statistics.pstdev(xs):4.1f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--stack", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="local baseline's [fleet] workers")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    recipe = load_recipe("models/kws-digits-fleet.toml", [
        f"fleet.members={args.members}", f"train.epochs={args.epochs}",
        f"fleet.stack={args.stack}", f"fleet.workers={args.workers}"])
    tmp = Path(tempfile.mkdtemp(prefix="edgetk-bray-", dir="/tmp"))
    runs: dict[str, list[tuple[float, float]]] = {"local": [], "1 node": [], "2 nodes": []}
    bits = []
    print(f"fleet: {args.members} members, {args.epochs} epochs, stacks of {args.stack} "
          f"({-(-args.members // args.stack)} stacks); local workers = {args.workers}; {args.reps} reps", flush=True)
    try:
        for rep in range(args.reps):
            ref = tmp / f"local-{rep}"
            runs["local"].append(job(recipe, ref, None))
            for nodes, name in ((1, "1 node"), (2, "2 nodes")):
                with local_cluster(nodes, tmp / f"c{rep}{nodes}") as address:
                    out = tmp / f"{nodes}-{rep}"
                    runs[name].append(job(recipe, out, address))
                bits.append(same_bits(out, ref))
            print(f"rep {rep}: " + ", ".join(f"{k} {v[-1][0]:.1f} s ({v[-1][1]:.1f} s training)"
                                            for k, v in runs.items()), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| run | whole job | training (fleet.json seconds) |\n|---|---|---|")
    for k, v in runs.items():
        print(f"| {k} | {_stat([w for w, _ in v])} | {_stat([s for _, s in v])} |")
    wall = {k: statistics.mean(w for w, _ in v) for k, v in runs.items()}
    train = {k: statistics.mean(s for _, s in v) for k, v in runs.items()}
    print(f"\n2 nodes vs 1 node: {wall['1 node'] / wall['2 nodes']:.2f}x whole job, "
          f"{train['1 node'] / train['2 nodes']:.2f}x training")
    print(f"2 nodes' time / local workers' time: {wall['2 nodes'] / wall['local']:.2f} whole job, "
          f"{train['2 nodes'] / train['local']:.2f} training (above 1: the cluster is slower)")
    print(f"members with the local job's bits: {sum(s for s, _ in bits)}/{sum(n for _, n in bits)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
