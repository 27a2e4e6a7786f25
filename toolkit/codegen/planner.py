"""Static memory plan: tensor lifetimes, aliasing (RESHAPE, in-place ops), greedy first-fit offsets.

The model's input and output tensors are not in the arena: kernels read the caller's input buffer
and write the caller's output buffer directly.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from toolkit.codegen.lower import Step
from toolkit.tflite.ir import Graph

log = logging.getLogger(__name__)

ALIGN = 16
INPUT, OUTPUT, ARENA = "input", "output", "arena"


@dataclass(frozen=True)
class Buffer:
    """One arena region: the tensors (or scratch) living in it and their joint lifetime."""

    name: str
    tensors: tuple[int, ...]
    size: int
    first: int
    last: int
    offset: int = 0


@dataclass(frozen=True)
class Plan:
    """Where each activation tensor lives and the arena size."""

    arena_size: int
    location: dict[int, tuple[str, int]]          # tensor -> (INPUT|OUTPUT|ARENA, byte offset)
    scratch: dict[int, int] = field(default_factory=dict)  # step index -> arena offset
    buffers: tuple[Buffer, ...] = ()
    copy_input_to_output: bool = False
    inplace: frozenset[int] = frozenset()  # steps whose output reuses their input's buffer


class _Groups:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, t: int) -> int:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(b)] = self.find(a)

    def members(self, t: int) -> list[int]:
        r = self.find(t)
        return [x for x in list(self.parent) if self.find(x) == r]


def plan(graph: Graph, steps: list[Step], *, inplace: bool = True) -> Plan:
    """Assign every activation tensor a location; arena regions by greedy size order, first fit."""
    groups = _Groups()
    gin, gout = graph.inputs[0], graph.outputs[0]
    for t in (gin, gout):
        groups.find(t)
    for s in steps:
        for t in s.inputs + s.outputs:
            groups.find(t)
        if s.alias:
            groups.union(s.inputs[0], s.outputs[0])
    done = _merge_inplace(graph, steps, groups) if inplace else frozenset()
    kind = _group_kinds(groups, gin, gout)
    buffers = _buffers(graph, steps, groups, kind, done)
    placed = _first_fit(buffers)
    location: dict[int, tuple[str, int]] = {}
    for t in list(groups.parent):
        k = kind[groups.find(t)]
        location[t] = (k, 0)
    scratch = {}
    for b in placed:
        for t in b.tensors:
            location[t] = (ARENA, b.offset)
        if b.name.startswith("scratch"):
            scratch[int(b.name[7:])] = b.offset
    size = max((b.offset + b.size for b in placed), default=0)
    both = groups.find(gin) == groups.find(gout)
    return Plan(_align(size), location, scratch, tuple(placed), copy_input_to_output=both, inplace=done)


def _group_kinds(groups: _Groups, gin: int, gout: int) -> dict[int, str]:
    kinds = {}
    for t in list(groups.parent):
        r = groups.find(t)
        kinds.setdefault(r, ARENA)
    kinds[groups.find(gout)] = OUTPUT
    kinds[groups.find(gin)] = INPUT
    return kinds


def _last_use(steps: list[Step], members: list[int]) -> int:
    return max((s.index for s in steps for t in s.inputs if t in members), default=-1)


def _merge_inplace(graph: Graph, steps: list[Step], groups: _Groups) -> frozenset[int]:
    """Let an op write over an input that dies at that op; returns the steps run in place."""
    ext = {groups.find(graph.inputs[0]), groups.find(graph.outputs[0])}
    done = set()
    for s in steps:
        if s.inplace is None:
            continue
        src, dst = s.inputs[s.inplace], s.outputs[0]
        if groups.find(src) in ext or groups.find(dst) in ext:
            continue
        if _last_use(steps, groups.members(src)) == s.index:
            groups.union(src, dst)
            done.add(s.index)
    return frozenset(done)


def _buffers(graph: Graph, steps: list[Step], groups: _Groups, kind: dict[int, str],
             inplace: frozenset[int]) -> list[Buffer]:
    out: list[Buffer] = []
    roots = sorted({groups.find(t) for t in list(groups.parent) if kind[groups.find(t)] == ARENA})
    for r in roots:
        members = groups.members(r)
        first = min((s.index for s in steps for t in s.outputs if t in members), default=0)
        last = max(_last_use(steps, members), first)
        size = max(graph.tensor(t).nbytes for t in members)
        out.append(Buffer(f"t{r}", tuple(sorted(members)), _align(size), first, last))
    for s in steps:
        n = s.inplace_scratch if s.index in inplace else s.scratch
        if n:
            out.append(Buffer(f"scratch{s.index}", (), _align(n), s.index, s.index))
    return out


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _first_fit(buffers: list[Buffer]) -> list[Buffer]:
    placed: list[Buffer] = []
    for b in sorted(buffers, key=lambda b: (-b.size, b.first, b.name)):
        live = sorted((p for p in placed if p.first <= b.last and b.first <= p.last),
                      key=lambda p: p.offset)
        offset = 0
        for p in live:
            if offset + b.size <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size))
        placed.append(Buffer(b.name, b.tensors, b.size, b.first, b.last, offset))
    return placed
