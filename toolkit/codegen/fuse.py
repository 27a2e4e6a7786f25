"""Generation-time fusion of a dsp conv with the same-shape ADD that is its output's only reader.

`out = ADD(conv(x), other)` runs as one kernel call at the conv's place (et_dsp_conv*_add): per pair of output
pixels the conv's int8 values are added to `other` right away, so the conv's output never exists whole and the
sum may overwrite `other` where it dies (the planner's in-place rule): a residual block then needs its two
activations and the im2col, not a third activation or a ring (ResNet-8 on 32x32x16: 33.5 KB of arena, not 34.1).
The ADD's step stays in the schedule without code (its operator comment, for per-operator counts). Same bits:
the kernels are the conv's and the ADD's own.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from toolkit.codegen.lower import Step

log = logging.getLogger(__name__)

CONVS = ("et_dsp_conv_w8", "et_dsp_conv_w16", "et_dsp_conv1x1_w8", "et_dsp_conv1x1_w16")
ADD_FIELDS = ("n", "k1", "m1", "c1", "z1", "e1", "k2", "mo", "co", "eo", "act_min", "act_max")


def fuse_conv_add(steps: list[Step], graph_outputs: tuple[int, ...] = ()) -> list[Step]:
    """The steps with each fusable (dsp conv, dsp ADD) pair merged into the conv's step (see the module docstring)."""
    out = list(steps)
    pos = {s.index: k for k, s in enumerate(out)}
    for add in [s for s in steps if s.func == "et_dsp_add"]:
        for side, t in enumerate(add.inputs):
            conv = _fusable(out, add, side, t, graph_outputs)
            if conv is not None:
                out[pos[conv.index]] = _fused(conv, add, side)
                out[pos[add.index]] = dataclasses.replace(add, func="", struct="", fields={}, arrays={}, inputs=(),
                                                          outputs=(), inplace=None, scratch=0, call_args=())
                log.info("operator %d (ADD) fused into operator %d (CONV_2D)", add.index, conv.index)
                break
    return out


def _fusable(steps: list[Step], add: Step, side: int, t: int, graph_outputs: tuple[int, ...]) -> Step | None:
    """The conv step producing input `side` of the ADD when the pair can run as one call at the conv's place."""
    conv = next((s for s in steps if t in s.outputs), None)
    other = add.inputs[1 - side]
    if conv is None or conv.func not in CONVS or conv.fields["batches"] != 1 or t in graph_outputs:
        return None
    readers = [s.index for s in steps if t in s.inputs]
    made = [s.index for s in steps if other in s.outputs]
    between = [s for s in steps if conv.index < s.index < add.index]
    if readers != [add.index] or any(m >= conv.index for m in made) or other in conv.inputs:
        return None
    if any(other in s.inputs or s.alias for s in between) or _aliased(steps, other, conv.inputs[0]):
        return None  # `other` is overwritten at the conv's place: nothing in between may read it, nor the conv
    return conv


def _aliased(steps: list[Step], a: int, b: int) -> bool:
    """Whether two tensors share memory through RESHAPE-like alias steps."""
    group = {a}
    for _ in steps:
        grown = group | {t for s in steps if s.alias and (set(s.inputs) | set(s.outputs)) & group
                         for t in s.inputs + s.outputs}
        if grown == group:
            break
        group = grown
    return b in group


def _fused(conv: Step, add: Step, side: int) -> Step:
    params = np.array([add.fields[k] for k in ADD_FIELDS] + [1 if side == 0 else 0], np.int64)
    if np.abs(params).max() >= 1 << 31:
        raise ValueError("ADD parameters beyond int32")  # the specialiser's bounds keep them inside
    scratch = conv.scratch + 2 * conv.fields["out_c"]
    other = add.inputs[1 - side]
    return dataclasses.replace(conv, func=conv.func + "_add", inputs=(conv.inputs[0], other), outputs=add.outputs,
                               arrays={**conv.arrays, "add": params.astype(np.int32)},
                               call_args=(conv.inputs[0], other, "add"), scratch=scratch, inplace=1,
                               inplace_func="", inplace_scratch=scratch)
