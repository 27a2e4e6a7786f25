"""Static memory plan: tensor lifetimes, aliasing (RESHAPE, in-place ops), greedy first-fit offsets.

The model's input and output live in the arena like any tensor: the input from before the first operator
until its last reader, the output from its producer until after the last operator; in-place operators may
write over either when it dies there. The generated API hands out pointers into the arena
(edgetk_input/edgetk_output). With `keep_input` the input stays intact through the whole inference
(a caller may run the same input again); by default it does so whenever that costs no arena byte.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from toolkit.codegen.lower import Step
from toolkit.tflite.ir import Graph

log = logging.getLogger(__name__)

ALIGN = 16
INPUT, OUTPUT, ARENA = "input", "output", "arena"
BEFORE_FIRST = -1  # lifetime index of the model input: written by the caller before operator 0


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
    location: dict[int, tuple[str, int]]          # tensor -> (ARENA, byte offset)
    scratch: dict[int, int] = field(default_factory=dict)  # step index -> arena offset
    buffers: tuple[Buffer, ...] = ()
    copy_input_to_output: bool = False            # kept for older callers: input and output now share memory
    inplace: frozenset[int] = frozenset()  # steps whose output reuses their input's buffer
    input_offset: int = 0                  # the model input's bytes in the arena
    output_offset: int = 0                 # the model output's bytes in the arena
    input_preserved: bool = True           # an inference leaves the input's bytes intact
    input_reuse_saves: int = 0             # arena bytes saved by letting the inference overwrite the input


def plan(graph: Graph, steps: list[Step], *, inplace: bool = True, keep_input: bool | None = None) -> Plan:
    """Assign every activation tensor an arena offset; regions by greedy size order, first fit.

    keep_input: True keeps the input intact through the inference, False lets later tensors (and in-place
    operators) reuse its memory, None (default) keeps it whenever that costs no arena byte."""
    if keep_input is not None:
        return _plan(graph, steps, inplace, keep_input)
    reuse, keep = _plan(graph, steps, inplace, False), _plan(graph, steps, inplace, True)
    if keep.arena_size <= reuse.arena_size:
        return keep
    return dataclasses.replace(reuse, input_reuse_saves=keep.arena_size - reuse.arena_size)


def _plan(graph: Graph, steps: list[Step], inplace: bool, keep_input: bool) -> Plan:
    groups = _Groups()
    gin, gout = graph.inputs[0], graph.outputs[0]
    for t in (gin, gout):
        groups.find(t)
    for s in steps:
        for t in s.inputs + s.outputs:
            groups.find(t)
        if s.alias:
            groups.union(s.inputs[0], s.outputs[0])
    end = max((s.index for s in steps), default=-1) + 1
    life = _Lifetimes(steps, groups, groups.find(gin), groups.find(gout), end, keep_input)
    done = _merge_inplace(steps, groups, life) if inplace else frozenset()
    placed = _first_fit(_buffers(graph, steps, groups, done, life))
    location: dict[int, tuple[str, int]] = {}
    scratch = {}
    for b in placed:
        for t in b.tensors:
            location[t] = (ARENA, b.offset)
        if b.name.startswith("scratch"):
            scratch[int(b.name[7:])] = b.offset
    size = max((b.offset + b.size for b in placed), default=0)
    preserved = keep_input or _untouched(placed, groups.find(gin), done, steps, groups)
    return Plan(_align(size), location, scratch, tuple(placed), inplace=done,
                input_offset=location[gin][1], output_offset=location[gout][1], input_preserved=preserved)


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


@dataclass
class _Lifetimes:
    """First and last step of a group of tensors: the input's opens before step 0, the output's closes after
    the last step (and the input's too with keep_input)."""

    steps: list[Step]
    groups: _Groups
    gin: int
    gout: int
    end: int
    keep_input: bool

    def holds_io(self, t: int) -> tuple[bool, bool]:
        r = self.groups.find(t)
        return r == self.groups.find(self.gin), r == self.groups.find(self.gout)

    def span(self, members: list[int]) -> tuple[int, int]:
        has_in, has_out = self.holds_io(members[0])
        first = min((s.index for s in self.steps for t in s.outputs if t in members), default=0)
        last = max(_last_use(self.steps, members), first)
        if has_in:
            first = BEFORE_FIRST
            last = self.end if self.keep_input else last
        return first, self.end if has_out else last


def _last_use(steps: list[Step], members: list[int]) -> int:
    return max((s.index for s in steps for t in s.inputs if t in members), default=-1)


def _merge_inplace(steps: list[Step], groups: _Groups, life: _Lifetimes) -> frozenset[int]:
    """Let an op write over an input that dies at that op; returns the steps run in place."""
    done = set()
    for s in steps:
        if s.inplace is None:
            continue
        src, dst = s.inputs[s.inplace], s.outputs[0]
        src_in, src_out = life.holds_io(src)
        if groups.find(src) == groups.find(dst) or src_out or (src_in and life.keep_input):
            continue
        if _last_use(steps, groups.members(src)) == s.index:
            groups.union(src, dst)
            done.add(s.index)
    return frozenset(done)


def _buffers(graph: Graph, steps: list[Step], groups: _Groups, inplace: frozenset[int],
             life: _Lifetimes) -> list[Buffer]:
    out: list[Buffer] = []
    for r in sorted({groups.find(t) for t in list(groups.parent)}):
        members = groups.members(r)
        first, last = life.span(members)
        size = max(graph.tensor(t).nbytes for t in members)
        out.append(Buffer(f"t{r}", tuple(sorted(members)), _align(size), first, last))
    for s in steps:
        n = s.inplace_scratch if s.index in inplace else s.scratch
        if n:
            out.append(Buffer(f"scratch{s.index}", (), _align(n), s.index, s.index))
    return out


def _untouched(placed: list[Buffer], gin: int, inplace: frozenset[int], steps: list[Step], groups: _Groups) -> bool:
    """True when no other region overlaps the input's and no in-place operator writes over it."""
    b = next(p for p in placed if gin in p.tensors)
    if any(s.index in inplace and groups.find(s.inputs[s.inplace]) == groups.find(gin) for s in steps):
        return False
    return not any(p is not b and p.offset < b.offset + b.size and b.offset < p.offset + p.size for p in placed)


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
