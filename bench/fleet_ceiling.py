"""Fleet ceiling: the most a batched fleet job can gain over one model after another, from its step times.

A fleet member-step and a plain model's step do the same arithmetic; stacking only saves the plain
step's fixed costs (Python, dispatch, autograd, optimizer bookkeeping, oneDNN call setup) and lets
grouped kernels run on larger tensors, and workers add cores. So for P cores the fleet job's speedup
over one model after another on 1 thread is at most
    P x t_plain / t_stacked(P)
where t_plain is one plain model's training step and t_stacked(P) the core time of one member-step in a
stack while P stacks train at once (they share the L3 cache and memory bandwidth). This script
measures those times in one run, on the kws-digits fleet's model (DS-CNN width 0.25, batch 32,
channels-last, AdamW, 1 torch thread per process), prints that ceiling and what a member-step must
cost for the 8x goal, and t_fixed: the plain step at batch 2 (almost no arithmetic: its fixed cost).
The real job also gathers batches, probes its layers, forks workers and evaluates (bench/fleet.py).
Usage: .venv/bin/python bench/fleet_ceiling.py [--stacks 4,8,16] [--procs 2] [--steps 60] [--reps 3]
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from toolkit.nn.dscnn import DSCNN, DSCNNConfig  # noqa: E402
from toolkit.specialize.stack import from_blocks, stack_models, to_blocks  # noqa: E402
from toolkit.train.trainer import channels_last_grads  # noqa: E402

CL = torch.channels_last


def step_ms(members: int, batch: int, exact: bool, steps: int) -> float:
    """Median ms of core time per member-step: one plain model (members 0) or a stack of `members`."""
    torch.set_num_threads(1)
    logging.disable(logging.INFO)
    m = max(1, members)
    models = [(torch.manual_seed(s), DSCNN(DSCNNConfig(width=0.25, n_classes=10)))[1] for s in range(m)]
    x, y = torch.randn(m, batch, 1, 49, 10), torch.randint(0, 10, (m, batch))
    if members == 0:
        net, xin, yy = models[0].to(memory_format=CL), x[0].contiguous(memory_format=CL), y[0]
        fwd = lambda: F.cross_entropy(net(xin), yy, reduction="sum") / batch  # noqa: E731
    else:
        net = stack_models(models, x[0], CL, exact).to(memory_format=CL)
        xin = to_blocks(x).contiguous(memory_format=CL)
        fwd = lambda: F.cross_entropy(from_blocks(net(xin), m).flatten(0, 1), y.flatten(),  # noqa: E731
                                      reduction="sum") / batch
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def step() -> None:
        loss = fwd()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = []
    with channels_last_grads(net, CL):
        for _ in range(5):
            step()
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(max(1, steps // 5)):
                step()
            times.append((time.perf_counter() - t0) / max(1, steps // 5) / m * 1e3)
    return statistics.median(times)


def _child(args: tuple, out) -> None:
    out.send(step_ms(*args))


def concurrent_ms(procs: int, members: int, batch: int, exact: bool, steps: int) -> float:
    """Mean per-member-step ms when `procs` forked processes run the same stacked step at once."""
    ctx = multiprocessing.get_context("fork")
    pipes = [ctx.Pipe() for _ in range(procs)]
    ps = [ctx.Process(target=_child, args=((members, batch, exact, steps), w)) for _, w in pipes]
    for p in ps:
        p.start()
    for _, w in pipes:
        w.close()                                          # a child that dies closes the pipe: recv raises EOFError
    got = [r.recv() for r, _ in pipes]
    for p in ps:
        p.join()
    return statistics.mean(got)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stacks", default="4,8,16", help="members per stack to measure")
    ap.add_argument("--procs", type=int, default=2, help="cores (processes at once) of the fleet job")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (alternating) of every measurement")
    ap.add_argument("--goal", type=float, default=8.0)
    args = ap.parse_args()
    stacks = [int(s) for s in args.stacks.split(",")]
    rows: dict[str, list[float]] = {}
    for _ in range(args.reps):
        rows.setdefault("plain", []).append(step_ms(0, 32, True, args.steps))
        rows.setdefault("fixed", []).append(step_ms(0, 2, True, args.steps))
        for m in stacks:
            for exact in (True, False):
                key = f"{m}{'' if exact else ' inexact'}"
                rows.setdefault(f"{key} alone", []).append(step_ms(m, 32, exact, max(8, args.steps // m * 2)))
                rows.setdefault(f"{key} x{args.procs}", []).append(
                    concurrent_ms(args.procs, m, 32, exact, max(8, args.steps // m * 2)))
    ms = {k: statistics.mean(v) for k, v in rows.items()}
    sd = {k: statistics.pstdev(v) for k, v in rows.items()}
    p = args.procs
    print(f"fleet ceiling, kws-digits fleet model (DS-CNN width 0.25, batch 32, channels-last, AdamW), "
          f"1 torch thread per process, {args.reps} reps; ms of core time per member-step")
    print(f"  plain model, one after another (baseline)   {ms['plain']:6.2f} +- {sd['plain']:.2f}")
    print(f"  plain model at batch 2 (~ its fixed cost)    {ms['fixed']:6.2f} +- {sd['fixed']:.2f}   "
          f"(arithmetic share of the plain step <= {100 * (1 - ms['fixed'] / ms['plain']):.0f} %)")
    for m in stacks:
        for suffix in ("", " inexact"):
            a, c = f"{m}{suffix} alone", f"{m}{suffix} x{p}"
            ceiling = p * ms["plain"] / ms[c]
            print(f"  stack of {m:2d}{suffix or ' exact':8s}  alone {ms[a]:6.2f} +- {sd[a]:.2f}   {p} at once "
                  f"{ms[c]:6.2f} +- {sd[c]:.2f}   ceiling on {p} cores {ceiling:4.1f}x")
    best = max(p * ms["plain"] / ms[f"{m} x{p}"] for m in stacks)
    need = p * ms["plain"] / args.goal
    print(f"  ceiling (best exact stack) on {p} cores: {best:.1f}x; goal {args.goal:g}x needs a member-step of "
          f"<= {need:.2f} ms with {p} at once, i.e. {ms['plain'] - ms['fixed']:.2f} ms of plain arithmetic done "
          f"{(ms['plain'] - ms['fixed']) / need:.1f}x faster even with no fixed cost at all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
