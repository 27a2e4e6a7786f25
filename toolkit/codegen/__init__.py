"""TFLite int8 -> C99 code generator: lowering, static memory plan, emitter, kernels."""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.codegen import emit
from toolkit.codegen.kernel_sets import DEFAULT, KERNEL_SETS, SPECIALIZED, headers, kernel_sources
from toolkit.codegen.fuse import fuse_conv_add
from toolkit.codegen.lower import Step, lower
from toolkit.codegen.planner import Plan, plan
from toolkit.codegen.specialize import check_optimize, specialize, summary
from toolkit.fsio import atomic_dir, atomic_write_json, atomic_write_text
from toolkit.tflite import Graph, read_model

log = logging.getLogger(__name__)

__all__ = ["CodegenResult", "DEFAULT_KERNELS", "KERNEL_SETS", "generate", "build_model"]
DEFAULT_KERNELS = DEFAULT


@dataclass(frozen=True)
class CodegenResult:
    """What generate() wrote and the figures of the plan."""

    out_dir: Path
    arena_size: int
    flash_estimate: int       # bytes of const weights, biases, multipliers and params
    files: tuple[str, ...]    # relative to out_dir
    ops: tuple[str, ...]      # operator types in schedule order
    macs: int
    sha256: str
    kernels: str
    optimize: str = "size"
    input_bytes: int = 0      # the model input's and output's bytes, inside the arena
    output_bytes: int = 0
    input_preserved: bool = True

    @property
    def peak_ram(self) -> int:
        """Bytes of RAM the network needs with edgetk_input/edgetk_run/edgetk_output: the arena."""
        return self.arena_size

    @property
    def peak_ram_with_copies(self) -> int:
        """With edgetk_invoke: the arena plus the caller's input and output buffers."""
        return self.arena_size + self.input_bytes + self.output_bytes


def build_model(tflite_path: str | os.PathLike, *, kernels: str = DEFAULT, optimize: str = "size",
                flash_bytes: int | None = None, keep_input: bool | None = None) -> tuple[Graph, list[Step], Plan]:
    """Read, lower, specialise (for the kernel set) and plan a model without writing anything.

    keep_input (toolkit.codegen.planner.plan): True keeps the input intact through an inference, False lets
    the plan reuse its memory, None keeps it when that costs no arena byte."""
    check_optimize(optimize)
    graph = read_model(tflite_path)
    steps = lower(graph)
    if kernels in SPECIALIZED:
        steps = fuse_conv_add(specialize(steps, optimize=optimize, flash_bytes=flash_bytes), tuple(graph.outputs))
    return graph, steps, plan(graph, steps, keep_input=keep_input)


def generate(tflite_path: str | os.PathLike, out_dir: str | os.PathLike, *,
             kernels: str = DEFAULT, frontend: Any = None, optimize: str = "size",
             flash_bytes: int | None = None, keep_input: bool | None = None) -> CodegenResult:
    """Generate the C library of a .tflite model into out_dir (replaced atomically).

    `frontend` (a toolkit.frontends.Frontend, or the info dict of a bundle's frontend.json) adds its C
    (edgetk_frontend.h/.c, kernels/etf_*) and the entry point edgetk_invoke_raw: raw samples -> output.
    `optimize` ("size" | "speed"): speed stores the weights of the dsp set's conv/FC kernels as int16
    (twice the bytes; with `flash_bytes`, the target's flash, only as many layers as fit); size keeps int8.
    The input and output live in the arena; `keep_input=True` keeps the input intact through an inference (a
    firmware that runs one upload many times), False lets the plan reuse it, None (default) keeps it when free."""
    tflite_path, out_dir = Path(tflite_path), Path(out_dir)
    if kernels not in KERNEL_SETS:
        kernel_sources(kernels, set())  # the one error naming the sets
    graph, steps, pl = build_model(tflite_path, kernels=kernels, optimize=optimize, flash_bytes=flash_bytes,
                                   keep_input=keep_input)
    fe = _frontend(frontend, graph)
    families = {s.family for s in steps if not s.alias and s.family}
    sources = kernel_sources(kernels, families)
    macs = sum(s.macs for s in steps)
    with atomic_dir(out_dir) as tmp:
        fe_type = fe.cfg.type if fe is not None else None
        atomic_write_text(tmp / "edgetk_model.h", emit.header(graph, pl, macs, tflite_path.name, fe_type))
        body = emit.source(graph, steps, pl, tflite_path.name, headers(kernels))
        atomic_write_text(tmp / "edgetk_model.c", body + ("\n" + emit.invoke_raw() if fe is not None else ""))
        (tmp / "kernels").mkdir()
        for src in sources:
            shutil.copyfile(src, tmp / "kernels" / src.name)
        if fe is not None:
            fe.emit_c(tmp)
        atomic_write_json(tmp / "plan.json", _plan_json(graph, steps, pl, kernels, macs, optimize))
        files = tuple(sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()))
    flash = sum(a.nbytes for s in steps for a in s.arrays.values()) + 128 * len(steps)
    log.info("codegen %s: %d ops, arena %d B (input and output included), ~%d B const data", tflite_path.name,
             len(steps), pl.arena_size, flash)
    x_bytes, y_bytes = emit.io_bytes(graph)
    return CodegenResult(out_dir, pl.arena_size, flash, files, tuple(s.op for s in steps), macs,
                         graph.sha256, kernels, optimize, x_bytes, y_bytes, pl.input_preserved)


def _frontend(frontend: Any, graph: Graph) -> Any:
    """The Frontend to emit beside the network (None without one), checked against the model's input."""
    if frontend is None or frontend == {}:
        return None
    from toolkit.errors import EdgetkError

    if isinstance(frontend, dict):
        from toolkit.frontends import frontend_from_info

        frontend = frontend_from_info(frontend)
    x = graph.tensor(graph.inputs[0])
    t, c = frontend.feature_shape
    if frontend.stage2 is None or x.dtype != "int8" or x.size != t * c:
        raise EdgetkError(f"the frontend's int8 features [{t}, {c}] are not this model's input "
                          f"({x.dtype} {list(x.shape)})" + ("; it has no normalisation" if frontend.stage2 is None else ""),
                          fix="generate the C from the bundle exported with this frontend (its model_int8.tflite "
                              "and frontend.json), or drop the frontend")
    return frontend


def _plan_json(graph: Graph, steps: list[Step], pl: Plan, kernels: str, macs: int, optimize: str = "size") -> dict:
    tensors = []
    for t, (kind, off) in sorted(pl.location.items()):
        tt = graph.tensor(t)
        tensors.append({"index": t, "name": tt.name, "shape": list(tt.shape), "bytes": tt.nbytes,
                        "location": kind, "offset": off})
    x_bytes, y_bytes = emit.io_bytes(graph)
    return {"arena_size": pl.arena_size, "alignment": 16, "kernels": kernels, "macs": macs,
            "io_in_arena": True,
            "input": {"offset": pl.input_offset, "bytes": x_bytes, "preserved": pl.input_preserved,
                      "reuse_saves_bytes": pl.input_reuse_saves},
            "output": {"offset": pl.output_offset, "bytes": y_bytes},
            "peak_ram_bytes": {"arena_api": pl.arena_size, "with_copy_buffers": pl.arena_size + x_bytes + y_bytes,
                               "note": "arena_api: edgetk_input/edgetk_run/edgetk_output (input and output in the "
                                       "arena); with_copy_buffers: edgetk_invoke's caller buffers added"},
            "optimize": optimize, "specialized": summary(steps),
            "model_sha256": graph.sha256, "tensors": tensors,
            "scratch": {str(k): v for k, v in pl.scratch.items()},
            "buffers": [{"name": b.name, "offset": b.offset, "size": b.size, "first_op": b.first,
                         "last_op": b.last} for b in pl.buffers],
            "ops": [{"index": s.index, "op": s.op, "kernel": None if s.alias else (s.func or "fused"),
                     "macs": s.macs} for s in steps]}
