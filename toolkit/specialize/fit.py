"""Fit to a target: the largest width multiplier whose predicted flash, RAM and MACs fit its budget.

Predictions (estimates, labelled as such, from the float model before export):
- flash = int8 weights (BatchNorm folded into the preceding conv) + 12 B per output channel (int32
          bias, requantization multiplier and shift) + code estimate;
- RAM   = activation memory plan (peak bytes of simultaneously live int8 tensors, ops that fuse or
          work in place share their input's buffer; 16-byte aligned) + static RAM (runtime buffers,
          stack); bench/fit.py compares both with the C library toolkit.codegen generates;
- MACs  <= clock_hz / cycles_per_mac * latency budget.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from torch import nn

from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)

ALIGN = 16                                                   # arena alignment of the generated C
WIDTHS = tuple(round(0.125 * i, 3) for i in range(1, 33))  # 0.125 ... 4.0
ALIASING = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Dropout, nn.Flatten, nn.Identity)
ALIAS_FUNCS = ("relu", "relu_", "flatten", "reshape", "view", "dropout", "squeeze", "unsqueeze")


@dataclass(frozen=True)
class FitBudget:
    """What the target offers and what the deployment costs besides the model."""

    flash_bytes: int
    ram_bytes: int
    macs: int
    code_bytes: int = 24_576        # generated C kernels + runtime + protocol (estimate)
    static_ram_bytes: int = 8_192   # UART/protocol buffers, stack, I/O copies (estimate)


@dataclass(frozen=True)
class Footprint:
    """Predicted deployment cost of one model."""

    params: int
    macs: int
    flash_bytes: int
    ram_bytes: int
    arena_bytes: int


@dataclass(frozen=True)
class FitResult:
    """The chosen width, its footprint, the budget and the limit that stops a wider model."""

    width: float
    footprint: Footprint
    budget: FitBudget
    binding: str                    # "flash" | "ram" | "macs" | "max-width"
    next_width: float | None        # the first width that does not fit
    next_footprint: Footprint | None

    def summary(self) -> str:
        """One readable paragraph for the CLI."""
        f, b = self.footprint, self.budget
        why = ("the widest width tried" if self.binding == "max-width" else
               f"width {self.next_width} would exceed {self.binding}")
        return (f"fit: width {self.width}: flash {f.flash_bytes:,} / {b.flash_bytes:,} B, RAM {f.ram_bytes:,} / "
                f"{b.ram_bytes:,} B (arena {f.arena_bytes:,}), MACs {f.macs:,} / {b.macs:,}; binding limit: "
                f"{self.binding} ({why}) [estimates]")


def budget_for(target, latency_ms: float = 1000.0) -> FitBudget:
    """The budget of a TargetSpec (toolkit.targets) for one inference within latency_ms."""
    cpm = target.cycles_per_mac or 8.0
    return FitBudget(int(target.flash_bytes), int(target.ram_bytes), int(target.clock_hz / cpm * latency_ms / 1000))


def arena_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Peak bytes of simultaneously live int8 activations for one inference (a greedy, gap-free plan)."""
    import torch
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    was = model.training
    gm = symbolic_trace(model.eval())
    ShapeProp(gm).propagate(torch.zeros((1, *input_shape)))
    model.train(was)
    owner: dict[str, str] = {}
    size: dict[str, int] = {}
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if node.op == "output" or meta is None:
            continue
        src = _alias_source(gm, node)
        owner[node.name] = owner.get(src, src) if src else node.name
        if not src:
            size[node.name] = -(-int(torch.Size(meta.shape).numel()) // ALIGN) * ALIGN
    return _peak(gm, owner, size)


def _alias_source(gm, node) -> str | None:
    """The buffer a node writes into when it fuses into or works in place on its first input."""
    fused = (node.op == "call_module" and isinstance(gm.get_submodule(node.target), ALIASING)) or (
        node.op in ("call_function", "call_method") and getattr(node.target, "__name__", node.target) in ALIAS_FUNCS)
    args = [a for a in node.args if hasattr(a, "name")]
    return args[0].name if fused and args else None


def _peak(gm, owner: dict[str, str], size: dict[str, int]) -> int:
    nodes = [n for n in gm.graph.nodes if n.name in owner]
    order = {n.name: i for i, n in enumerate(nodes)}
    last = {}
    for n in nodes:
        last[owner[n.name]] = max(last.get(owner[n.name], 0), order[n.name])
        for u in n.users:
            if u.name in order:
                last[owner[n.name]] = max(last[owner[n.name]], order[u.name])
    start = {b: order[b] for b in size}
    return max(sum(s for b, s in size.items() if start[b] <= t <= last[b]) for t in range(len(nodes)))


def footprint(model: nn.Module, input_shape: tuple[int, ...], budget: FitBudget) -> Footprint:
    """Predicted params, MACs, flash and RAM of a float model once exported to int8."""
    from toolkit.nn.profile import profile_model

    prof = profile_model(model, input_shape)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    biases = sum(m.weight.shape[0] for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    arena = arena_bytes(model, input_shape)
    return Footprint(prof.params, prof.macs, weights + 12 * biases + budget.code_bytes,
                     arena + budget.static_ram_bytes, arena)


def binding_limit(fp: Footprint, b: FitBudget) -> str | None:
    """The first budget (flash, ram, macs) the footprint exceeds, or None when it fits."""
    for name, used, have in (("flash", fp.flash_bytes, b.flash_bytes), ("ram", fp.ram_bytes, b.ram_bytes),
                             ("macs", fp.macs, b.macs)):
        if used > have:
            return name
    return None


def fit_width(recipe, data, budget: FitBudget, widths: tuple[float, ...] = WIDTHS) -> FitResult:
    """The largest width in `widths` whose footprint fits `budget` (the recipe's architecture and data)."""
    import torch

    from toolkit.nn import build_model

    best: tuple[float, Footprint] | None = None
    for w in sorted(widths):
        r = recipe.replace(model=dataclasses.replace(recipe.model, width=w))
        torch.manual_seed(0)
        fp = footprint(build_model(r, data), data.input_shape, budget)
        limit = binding_limit(fp, budget)
        log.debug("width %s: %s -> %s", w, fp, limit or "fits")
        if limit:
            if best is None:
                raise EdgetkError(f"even width {w} needs {fp.flash_bytes:,} B flash, {fp.ram_bytes:,} B RAM, "
                                  f"{fp.macs:,} MACs: over the target's {limit} budget",
                                  fix="pick a larger target, a longer latency budget or a smaller architecture")
            return FitResult(best[0], best[1], budget, limit, w, fp)
        best = (w, fp)
    return FitResult(best[0], best[1], budget, "max-width", None, None)


def apply_fit(recipe, target_name: str, latency_ms: float = 1000.0):
    """The recipe with model.width set to the widest that fits the named target (prints why)."""
    import sys

    from toolkit.data import load_dataset
    from toolkit.targets import get_target

    result = fit_width(recipe, load_dataset(recipe), budget_for(get_target(target_name), latency_ms))
    print(f"{target_name}: {result.summary()}", file=sys.stderr, flush=True)
    return recipe.replace(model=dataclasses.replace(recipe.model, width=result.width))
