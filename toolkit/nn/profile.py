"""Per-layer output shapes, parameters and MACs of a torch model, measured with forward hooks."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class LayerProfile:
    """One leaf module: name, type, output shape, parameters and multiply-accumulates."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelProfile:
    """Per-layer rows and totals (MACs count Conv2d and Linear; BatchNorm folds at export)."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    layers: tuple[LayerProfile, ...]
    params: int
    macs: int

    def table(self) -> str:
        """A fixed-width text table with a totals line."""
        w = max([len(r.name) for r in self.layers] + [5])
        lines = [f"{'layer':{w}s}  {'type':17s} {'output':18s} {'params':>9s} {'MACs':>11s}"]
        for r in self.layers:
            lines.append(f"{r.name:{w}s}  {r.type:17s} {str(list(r.output_shape)):18s} {r.params:9,d} {r.macs:11,d}")
        lines.append(f"{'total':{w}s}  {'':17s} {str(list(self.output_shape)):18s} {self.params:9,d} {self.macs:11,d}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "params": self.params, "macs": self.macs,
                "layers": [{"name": r.name, "type": r.type, "output_shape": list(r.output_shape),
                            "params": r.params, "macs": r.macs} for r in self.layers]}


def layer_macs(module: nn.Module, out_shape: tuple[int, ...]) -> int:
    """MACs of one leaf module for one sample, from its output shape."""
    n_out = 1
    for d in out_shape[1:]:
        n_out *= d
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return n_out * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return n_out * module.in_features
    return 0


def profile_model(model: nn.Module, input_shape: tuple[int, ...]) -> ModelProfile:
    """Run one zero input of shape [1, *input_shape] and record every leaf module."""
    import torch

    rows: list[LayerProfile] = []
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]

    def hook(name: str):
        def record(module: nn.Module, _inp, out) -> None:
            shape = tuple(out.shape)
            rows.append(LayerProfile(name, type(module).__name__, shape[1:],
                                     sum(p.numel() for p in module.parameters(recurse=False)),
                                     layer_macs(module, shape)))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros((1, *input_shape)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return ModelProfile(tuple(input_shape), tuple(out.shape[1:]), tuple(rows),
                        sum(p.numel() for p in model.parameters()), sum(r.macs for r in rows))
