"""Fuzz campaigns kept in the repo (issue #14): mutated .tflite files, ONNX models and recipes.

The property for every parser: an input works, or it is refused with one EdgetkError; never another
exception, never a crash, never a silently wrong output. For the TFLite reader and the code generator,
"works" is checked deeper on a sample: what codegen accepts must compile warning-free (ASan/UBSan) and
give TFLite-Micro's bytes, and TFLite-Micro must run it too.

Every input i of a campaign is mutated with numpy.random.default_rng([seed, i]), so (seed, i) reproduces
it; failing inputs are saved to a folder. tests/test_fuzz_*.py run short seeded campaigns,
bench/fuzz_*.py long ones. Pure Python parsers run in process; bench/fuzzing.py supervises a child
process so that a crash (a signal) is recorded with its input too.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import logging
import math
import os
import re
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)

Mutator = Callable[[np.random.Generator, bytes], bytes]
Check = Callable[[bytes], str]          # returns "accepted" or "refused"; raises Finding for a violation
CATCH_ALL = "could not be lowered ("     # codegen's last-resort message: a cause no rule names yet (a finding)


class Finding(Exception):
    """A property violation: a silently wrong output, a catch-all message, a crash or a mismatch."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass(frozen=True)
class Failure:
    """One failing input: its campaign index, what went wrong, and where its bytes were saved."""

    index: int
    kind: str
    message: str
    path: str = ""


@dataclass
class Report:
    """What a campaign did."""

    target: str
    seed: int
    tried: int = 0
    accepted: int = 0
    refused: int = 0
    deep_checked: int = 0
    failures: list[Failure] = field(default_factory=list)
    slowest_s: float = 0.0
    slowest_index: int = -1
    elapsed_s: float = 0.0

    def summary(self) -> str:
        """One paragraph: counts, rate, failures, slowest input."""
        rate = self.tried / self.elapsed_s if self.elapsed_s else 0.0
        lines = [f"{self.target}: {self.tried} inputs in {self.elapsed_s:.1f} s ({rate:.0f}/s; seed {self.seed}): "
                 f"{self.accepted} accepted, {self.refused} refused with one EdgetkError, "
                 f"{self.deep_checked} accepted inputs checked deeper, {len(self.failures)} failures; slowest input "
                 f"#{self.slowest_index} {1e3 * self.slowest_s:.1f} ms"]
        lines += [f"  FAIL #{f.index} {f.kind}: {f.message[:300]} {f.path}" for f in self.failures[:20]]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        d = {k: v for k, v in vars(self).items() if k != "failures"}
        return d | {"failures": [vars(f) for f in self.failures]}


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise _Timeout after `seconds` (SIGALRM; main thread only, else no limit)."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise _Timeout()
    try:
        old = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_campaign(target: str, seeds: list[bytes], mutate: Mutator, check: Check, *, n: int | None = None,
                 seconds: float | None = None, seed: int = 0, start: int = 0, out_dir: str | Path | None = None,
                 suffix: str = ".bin", per_input_s: float = 20.0,
                 deep: Callable[[bytes, int], None] | None = None, deep_every: int = 0,
                 mark: Callable[[int], None] | None = None) -> Report:
    """Mutate seeds and check each input until n inputs or `seconds` have passed.

    deep(data, index) runs on every deep_every-th accepted input (raises Finding on a violation).
    Before each input, mark(index) is called when given (a child of `supervise` writes the index to its pipe: the
    input is rebuilt from (seed, index) after a crash); else, with out_dir, the input and its index are written
    to out_dir/current*.
    """
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    rep, t_start, i = Report(target, seed), time.monotonic(), start
    while (n is None or i < start + n) and (seconds is None or time.monotonic() - t_start < seconds):
        data = nth_input(seeds, mutate, seed, i)
        if mark is not None:
            mark(i)
        elif out is not None:   # a crash leaves its input and index behind
            (out / f"current{suffix}").write_bytes(data)
            (out / "current.idx").write_text(str(i))
        t0 = time.monotonic()
        try:
            with _time_limit(per_input_s):
                outcome = check(data)
                if outcome == "accepted" and deep is not None and deep_every and rep.accepted % deep_every == 0:
                    deep(data, i)
                    rep.deep_checked += 1
            rep.accepted += outcome == "accepted"
            rep.refused += outcome == "refused"
        except Finding as e:
            _fail(rep, out, i, e.kind, str(e), data, suffix)
        except _Timeout:
            _fail(rep, out, i, "timeout", f"more than {per_input_s:g} s", data, suffix)
        except Exception as e:  # noqa: BLE001 - the property under test: no other exception may escape
            _fail(rep, out, i, "traceback", f"{type(e).__name__}: {e}\n{_where(e)}", data, suffix)
        dt = time.monotonic() - t0
        if dt > rep.slowest_s:
            rep.slowest_s, rep.slowest_index = dt, i
        rep.tried += 1
        i += 1
    rep.elapsed_s = time.monotonic() - t_start
    return rep


def nth_input(seeds: list[bytes], mutate: Mutator, seed: int, i: int) -> bytes:
    """Input i of a campaign with this seed: a function of (seed, i) alone."""
    rng = np.random.default_rng([seed, i])
    return mutate(rng, seeds[int(rng.integers(len(seeds)))])


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)[-3:]
    return " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))


def _fail(rep: Report, out: Path | None, i: int, kind: str, msg: str, data: bytes, suffix: str) -> None:
    path = ""
    if out is not None:
        p = out / f"{rep.target}-{rep.seed}-{i}-{kind}{suffix}"
        p.write_bytes(data)
        path = str(p)
    rep.failures.append(Failure(i, kind, msg, path))
    log.warning("%s #%d %s: %s", rep.target, i, kind, msg.splitlines()[0] if msg else "")


# ---------------------------------------------------------------- byte-level mutations (every format)
_WORDS = (0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 0x10000)


def mutate_bytes(rng: np.random.Generator, data: bytes) -> bytes:
    """1-4 byte flips, 32-bit word overwrites (indices, offsets, lengths), a cut, or an inserted run."""
    b = bytearray(data)
    kind = int(rng.integers(6))
    if kind == 4 and len(b) > 8:
        return bytes(b[: int(rng.integers(8, len(b)))])
    if kind == 5:
        at = int(rng.integers(len(b) + 1))
        return bytes(b[:at] + rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes() + b[at:])
    for _ in range(int(rng.integers(1, 5))):
        if not b:
            break
        if kind in (0, 1):
            pos = int(rng.integers(len(b)))
            b[pos] ^= 1 << int(rng.integers(8))
        else:
            pos = int(rng.integers(max(len(b) // 4, 1))) * 4
            word = int(rng.choice(_WORDS)) if kind == 2 else int(rng.integers(0, 64))
            b[pos:pos + 4] = word.to_bytes(4, "little")[: len(b) - pos]
    return bytes(b)


# ---------------------------------------------------------------- TFLite models
_FLOATS = (0.0, -0.05, float("nan"), float("inf"), -float("inf"), 1e-45, 1e-30, 1e30, 3.4e38, 1e-8, 7.0, 0.5)
_INTS = (-1, -2, 0, 1, 2, 3, 4, 127, 128, -128, -129, 255, 300, 65535, 2**31 - 1, -2**31, 1 << 20)


def _special(rng: np.random.Generator, v: Any) -> Any:
    if isinstance(v, bool):
        return not v
    if isinstance(v, float):
        return float(rng.choice(_FLOATS)) if rng.random() < 0.7 else v * float(rng.choice((1e-6, 1e6, -1.0, 2.0)))
    if isinstance(v, int):
        return int(rng.choice(_INTS)) if rng.random() < 0.7 else v + int(rng.integers(-3, 4))
    return v


def _index(rng: np.random.Generator, n: int) -> int:
    return int(rng.choice((-1, -2, n, n + 1, 0))) if rng.random() < 0.6 else int(rng.integers(max(n, 1)))


def _mutate_list(rng: np.random.Generator, v: list, n: int) -> list:
    v = list(v)
    r = rng.random()
    if r < 0.6 and v:
        v[int(rng.integers(len(v)))] = _index(rng, n)
    elif r < 0.75:
        v = v[:-1]
    elif r < 0.9:
        v.append(_index(rng, n))
    else:
        v = []
    return v


def _mutate_tensor(rng: np.random.Generator, m: Any, t: Any) -> None:
    if t.quantization is not None:
        t.quantization = copy.copy(t.quantization)
    q, what = t.quantization, int(rng.integers(9))
    if what == 0 and q is not None and q.scale is not None and len(q.scale):
        q.scale = [float(x) for x in q.scale]
        q.scale[int(rng.integers(len(q.scale)))] = _special(rng, 1.0)
    elif what == 1 and q is not None and q.zeroPoint is not None:
        zp = [int(x) for x in q.zeroPoint]
        q.zeroPoint = [] if not zp or rng.random() < 0.2 else zp
        if q.zeroPoint:
            q.zeroPoint[int(rng.integers(len(zp)))] = int(rng.choice(_INTS))
    elif what == 2 and q is not None:
        q.quantizedDimension = int(rng.choice((-1, 0, 1, 3, 5)))
    elif what == 3 and t.shape is not None and len(t.shape):
        shape = [int(d) for d in t.shape]
        shape[int(rng.integers(len(shape)))] = int(rng.choice((0, -1, 1, 2, 7, 1 << 20, 2**31 - 1)))
        t.shape = shape
    elif what == 4:
        t.shape = [] if rng.random() < 0.5 else [int(d) for d in (t.shape if t.shape is not None else [])] + [1]
    elif what == 5:
        t.type = int(rng.integers(0, 18))
    elif what == 6:
        t.buffer = _index(rng, len(m.buffers or []))
    elif what == 7:
        t.isVariable = not t.isVariable
    else:
        t.name = bytes(rng.integers(0, 256, int(rng.integers(1, 12)), dtype=np.uint8)) if rng.random() < 0.5 \
            else b"*/ #include <x> \n/*"


def _mutate_operator(rng: np.random.Generator, m: Any, sg: Any, op: Any) -> None:
    n, what = len(sg.tensors or []), int(rng.integers(7))
    if what == 0:
        op.inputs = _mutate_list(rng, op.inputs if op.inputs is not None else [], n)
    elif what == 1:
        op.outputs = _mutate_list(rng, op.outputs if op.outputs is not None else [], n)
    elif what == 2 and op.builtinOptions is not None:
        op.builtinOptions = copy.copy(op.builtinOptions)
        keys = [k for k, v in vars(op.builtinOptions).items() if isinstance(v, (int, float))]
        if keys:
            k = keys[int(rng.integers(len(keys)))]
            setattr(op.builtinOptions, k, _special(rng, getattr(op.builtinOptions, k)))
    elif what == 3:
        op.builtinOptionsType = int(rng.integers(0, 130))
    elif what == 4:
        op.builtinOptions, op.builtinOptionsType = None, 0
    elif what == 5:
        op.opcodeIndex = _index(rng, len(m.operatorCodes or []))
    elif m.operatorCodes:
        k = int(rng.integers(len(m.operatorCodes)))
        oc = m.operatorCodes[k] = copy.copy(m.operatorCodes[k])
        oc.builtinCode = int(rng.integers(0, 160))
        oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)


def mutate_tflite_fields(rng: np.random.Generator, data: bytes) -> bytes:
    """Unpack with the flatbuffer object API, change 1-3 fields (indices, quantization, shapes, types, options,
    opcodes, buffers, operator order), pack again."""
    import flatbuffers

    m = _writable(_unpacked(data))
    sg = m.subgraphs[0]
    for _ in range(int(rng.integers(1, 4))):
        r = rng.random()
        if r < 0.35 and sg.tensors:
            k = int(rng.integers(len(sg.tensors)))
            _mutate_tensor(rng, m, _own(sg.tensors, k))
        elif r < 0.7 and sg.operators:
            k = int(rng.integers(len(sg.operators)))
            _mutate_operator(rng, m, sg, _own(sg.operators, k))
        elif r < 0.8:
            n = len(sg.tensors or [])
            if rng.random() < 0.5:
                sg.inputs = _mutate_list(rng, sg.inputs if sg.inputs is not None else [], n)
            else:
                sg.outputs = _mutate_list(rng, sg.outputs if sg.outputs is not None else [], n)
        elif r < 0.87 and m.buffers and len(m.buffers) > 1:
            b = _own(m.buffers, int(rng.integers(1, len(m.buffers))))
            if b.data is not None and len(b.data):
                b.data = list(b.data)[: int(rng.integers(len(b.data)))] if rng.random() < 0.5 else \
                    list(b.data) + [0] * int(rng.integers(1, 9))
        elif r < 0.94 and sg.operators and len(sg.operators) > 1:
            i, j = (int(x) for x in rng.choice(len(sg.operators), 2, replace=False))
            if rng.random() < 0.5:
                sg.operators[i], sg.operators[j] = sg.operators[j], sg.operators[i]
            else:
                del sg.operators[i]
        else:
            m.subgraphs = m.subgraphs + [sg] if rng.random() < 0.3 else m.subgraphs
            m.description = b"\xff\xfe not utf-8"
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@functools.lru_cache(maxsize=64)
def _unpacked(data: bytes) -> Any:
    """A seed unpacked with the flatbuffer object API once (never changed: mutations copy what they change)."""
    from ai_edge_litert import schema_py_generated as s

    return s.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _writable(model: Any) -> Any:
    """A shallow copy of a model whose lists of subgraphs, buffers, opcodes, tensors and operators are its own
    (their items are still shared: _own copies one before it is changed)."""
    m = copy.copy(model)
    m.subgraphs = [copy.copy(sg) for sg in m.subgraphs]
    m.buffers = list(m.buffers) if m.buffers is not None else None
    m.operatorCodes = list(m.operatorCodes) if m.operatorCodes is not None else None
    for sg in m.subgraphs:
        sg.tensors = list(sg.tensors) if sg.tensors is not None else None
        sg.operators = list(sg.operators) if sg.operators is not None else None
    return m


def _own(items: list, k: int) -> Any:
    """items[k] replaced by a shallow copy of it (copy on write), returned."""
    items[k] = copy.copy(items[k])
    return items[k]


def mutate_tflite(rng: np.random.Generator, data: bytes) -> bytes:
    """Half byte-level, half field-level mutations (a field mutation that cannot be packed falls back to bytes)."""
    if rng.random() < 0.5:
        return mutate_bytes(rng, data)
    try:
        return mutate_tflite_fields(rng, data)
    except Exception:  # noqa: BLE001 - a mutation the object API cannot pack (e.g. a value out of the C type)
        return mutate_bytes(rng, data)


def check_tflite(data: bytes) -> str:
    """Reader, inspect's figures, lowering, memory plan and C text: accepted, or refused with one EdgetkError."""
    from toolkit.codegen import emit
    from toolkit.codegen.lower import lower
    from toolkit.codegen.planner import plan
    from toolkit.tflite import read_bytes
    from toolkit.tflite.stats import summary

    try:
        g = read_bytes(data, name="fuzz.tflite")
    except EdgetkError:
        return "refused"
    summary(g)
    try:
        steps = lower(g)
        pl = plan(g, steps)
    except EdgetkError as e:
        if CATCH_ALL in str(e):
            raise Finding("catch-all", str(e)) from None
        return "refused"
    macs = sum(s.macs for s in steps)
    emit.header(g, pl, macs, "fuzz.tflite")
    emit.source(g, steps, pl, "fuzz.tflite")
    return "accepted"


def deep_check_tflite(work: Path, samples: int = 6) -> Callable[[bytes, int], None]:
    """A deep check: generate C, build it with ASan/UBSan -Werror, run `samples` seeded inputs, compare the bytes
    with TFLite-Micro (which must run the model too)."""
    from toolkit.codegen import generate
    from toolkit.codegen.host import compile_host, run_host
    from toolkit.runtimes import run_tflm
    from toolkit.tflite import read_bytes

    def deep(data: bytes, index: int) -> None:
        d = work / f"deep-{index}"
        d.mkdir(parents=True, exist_ok=True)
        model = d / "m.tflite"
        model.write_bytes(data)
        g = read_bytes(data)
        x_t, y_t = g.tensor(g.inputs[0]), g.tensor(g.outputs[0])
        rng = np.random.default_rng(index)
        shape = (samples,) + (x_t.shape[1:] if x_t.shape[:1] == (1,) else x_t.shape)   # whole input tensors
        if x_t.dtype == "float32":
            x = (rng.normal(size=shape) * 3).astype(np.float32)
        else:
            x = rng.integers(-128, 128, size=shape, dtype=np.int8)
        try:
            generate(model, d / "c", kernels="reference")
            exe = compile_host(d / "c", d / "run", sanitize=True, object_cache=work / "objects")
            out_dtype = np.float32 if y_t.dtype == "float32" else np.int8
            ours = run_host(exe, x, y_t.size, dtype=out_dtype)
        except EdgetkError as e:
            raise Finding("generated-c", str(e)[:2000]) from None
        try:
            ref = run_tflm(model, x).reshape(samples, -1)
        except EdgetkError as e:
            raise Finding("tflm-refused-accepted-model", str(e)[:2000]) from None
        if ours.shape != ref.shape or not np.array_equal(ours.view(np.uint8), ref.astype(out_dtype).view(np.uint8)):
            diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max() if ours.shape == ref.shape else -1
            raise Finding("mismatch", f"generated C differs from TFLite-Micro (max |diff| {diff})")

    return deep


def tflite_seeds(external: Path | None = None, *, include_external: bool = True) -> list[bytes]:
    """Small models built with toolkit.tflite.build (one or two of every op family) and, when present, the
    MLPerf Tiny / TFLite-Micro int8 models in shared/external and the LSTM test model."""
    from toolkit.paths import REPO_ROOT

    seeds = [_build(t, o) for t, o in _seed_specs()]
    lstm = REPO_ROOT / "tests" / "data" / "lstm_fsdd_int8.tflite"
    if lstm.is_file():
        seeds.append(lstm.read_bytes())
    if include_external and external is not None and external.is_dir():
        for name in ("kws_ref_model.tflite", "ad01_int8.tflite", "hello_world_int8.tflite", "str_ww_ref_model.tflite",
                     "pretrainedResnet_quant.tflite"):
            seeds += [p.read_bytes() for p in sorted(external.rglob(name))]
    return seeds


def _build(tensors: list, ops: list) -> bytes:
    from toolkit.tflite.build import build_model

    return build_model(tensors, ops, [0], [len(tensors) - 1])


def _seed_specs() -> list[tuple[list, list]]:
    from toolkit.tflite.build import OpSpec as O
    from toolkit.tflite.build import TensorSpec as T

    rng = np.random.default_rng(3)

    def w(*shape: int) -> np.ndarray:
        return rng.integers(-127, 128, size=shape, dtype=np.int8)

    def b(k: int) -> np.ndarray:
        return rng.integers(-2000, 2000, size=k).astype(np.int32)

    def i32(*v: int) -> T:
        return T((len(v),), "int32", None, data=np.array(v, np.int32))

    q, q2 = dict(scale=(0.05,), zero_point=(3,)), dict(scale=(0.1,), zero_point=(-4,))
    win = dict(padding="SAME", stride_w=1, stride_h=1, dilation_w_factor=1, dilation_h_factor=1)
    return [
        ([T((1, 6, 6, 3), **q), T((4, 3, 3, 3), data=w(4, 3, 3, 3), scale=tuple(np.linspace(.005, .02, 4)),
                                  zero_point=(0,) * 4), T((4,), "int32", None, data=b(4)), T((1, 6, 6, 4), **q2)],
         [O("CONV_2D", (0, 1, 2), (3,), win | dict(fused_activation_function="RELU"))]),
        ([T((1, 6, 6, 4), **q), T((1, 3, 3, 4), data=w(1, 3, 3, 4), scale=(0.01,), zero_point=(0,)),
          T((4,), "int32", None, data=b(4)), T((1, 6, 6, 4), **q2)],
         [O("DEPTHWISE_CONV_2D", (0, 1, 2), (3,), win | dict(depth_multiplier=1))]),
        ([T((1, 12), **q), T((5, 12), data=w(5, 12), scale=(0.01,), zero_point=(0,)), T((5,), "int32", None, data=b(5)),
          T((1, 5), **q2), T((1, 5), scale=(1 / 256,), zero_point=(-128,))],
         [O("FULLY_CONNECTED", (0, 1, 2), (3,)), O("SOFTMAX", (3,), (4,), dict(beta=1.0))]),
        ([T((1, 6, 6, 2), **q), T((1, 3, 3, 2), **q), T((1, 3, 3, 2), **q)],
         [O("AVERAGE_POOL_2D", (0,), (1,), dict(padding="VALID", stride_w=2, stride_h=2, filter_width=2,
                                                 filter_height=2)),
          O("MAX_POOL_2D", (1,), (2,), dict(padding="SAME", stride_w=1, stride_h=1, filter_width=2, filter_height=2))]),
        ([T((1, 4, 4, 3), **q), i32(1, 2), T((1, 1, 1, 3), **q2), T((1, 4, 4, 3), **q)],
         [O("MEAN", (0, 1), (2,), dict(keep_dims=True)), O("ADD", (2, 0), (3,), dict(fused_activation_function="RELU"))]),
        ([T((1, 3, 4), **q), T((1, 3, 4), **q), T((1, 3, 8), **q), i32(1, 24), T((1, 24), **q)],
         [O("MUL", (0, 0), (1,)), O("CONCATENATION", (0, 1), (2,), dict(axis=-1)), O("RESHAPE", (2, 3), (4,))]),
        ([T((1, 5, 4, 2), **q), T((4, 2), "int32", None, data=np.array([[0, 0], [1, 1], [0, 2], [0, 0]], np.int32)),
          T((1, 7, 6, 2), **q), T((1, 7, 6, 2), scale=(1 / 256,), zero_point=(-128,))],
         [O("PAD", (0, 1), (2,)), O("LOGISTIC", (2,), (3,))]),
        ([T((1, 6, 8), **q), i32(0, 1, 0), i32(1, 5, 8), i32(1, 2, 2), T((1, 2, 4), **q), T((1, 2, 4), **q2)],
         [O("STRIDED_SLICE", (0, 1, 2, 3), (4,)), O("LEAKY_RELU", (4,), (5,), dict(alpha=0.2))]),
        ([T((1, 4, 4, 2), dtype="float32", scale=None), T((1, 4, 4, 2), **q), T((1, 4, 4, 2), **q2),
          T((1, 4, 4, 2), dtype="float32", scale=None)],
         [O("QUANTIZE", (0,), (1,)), O("HARD_SWISH", (1,), (2,)), O("DEQUANTIZE", (2,), (3,))]),
    ]


# ---------------------------------------------------------------- ONNX models (edgetk inspect)
def onnx_seeds() -> list[bytes]:
    """A float Conv/Relu/GlobalAveragePool/Gemm model and its QDQ int8 form with edgetk's metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)

    def init(name: str, a: np.ndarray) -> Any:
        return numpy_helper.from_array(a, name)

    float_inits = [init("w", rng.normal(size=(4, 1, 3, 3)).astype(np.float32)), init("b", np.zeros(4, np.float32)),
                   init("fw", rng.normal(size=(3, 4)).astype(np.float32)), init("fb", np.zeros(3, np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    io_ = ([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
           [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    fp32 = helper.make_model(helper.make_graph(nodes, "fp32", *io_, float_inits),
                             opset_imports=[helper.make_opsetid("", 18)])
    s, z = init("s", np.array(0.05, np.float32)), init("z", np.array(3, np.int8))
    ws, wz = init("ws", np.full(4, 0.01, np.float32)), init("wz", np.zeros(4, np.int8))
    q_inits = [s, z, ws, wz, init("wq", rng.integers(-127, 128, (4, 1, 3, 3), dtype=np.int8)),
               init("bq", rng.integers(-999, 999, 4).astype(np.int32)), init("bs", np.full(4, 0.0005, np.float32)),
               init("fw", rng.normal(size=(4, 3)).astype(np.float32)), init("shape", np.array([1, 4], np.int64))]
    q_nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
               helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
               helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
               helper.make_node("DequantizeLinear", ["bq", "bs"], ["bd"], axis=0),
               helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1]),
               helper.make_node("Relu", ["c"], ["r"]), helper.make_node("QuantizeLinear", ["r", "s", "z"], ["rq"]),
               helper.make_node("DequantizeLinear", ["rq", "s", "z"], ["rd"]),
               helper.make_node("GlobalAveragePool", ["rd"], ["g"]), helper.make_node("Reshape", ["g", "shape"], ["f"]),
               helper.make_node("MatMul", ["f", "fw"], ["y0"]), helper.make_node("QuantizeLinear", ["y0", "s", "z"], ["yq"]),
               helper.make_node("DequantizeLinear", ["yq", "s", "z"], ["y"])]
    int8 = helper.make_model(helper.make_graph(q_nodes, "int8", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], q_inits),
                             opset_imports=[helper.make_opsetid("", 18)])
    int8.metadata_props.add(key="edgetk.requantization", value="dyadic")
    int8.metadata_props.add(key="edgetk.requantization.info",
                            value=json.dumps({"exact_means": 1, "add_groups": 0, "dyadic_channels": 4, "inexact_channels": 0}))
    for m in (fp32, int8):
        onnx.checker.check_model(m)
    return [fp32.SerializeToString(), int8.SerializeToString()]


def mutate_onnx_fields(rng: np.random.Generator, data: bytes) -> bytes:
    """Corrupt edgetk's metadata, an initializer (bytes, type, dims), a node (inputs, attributes) or the opset."""
    import onnx

    m = onnx.load_from_string(data)
    g, what = m.graph, int(rng.integers(6))
    if what == 0 and m.metadata_props:
        p = m.metadata_props[int(rng.integers(len(m.metadata_props)))]
        choices = ("{not json", "[1, 2]", '{"exact_means": "x"}', '{"exact_means": -1, "add_groups": 0, '
                   '"dyadic_channels": 1, "inexact_channels": 0}', "", "null", "1e999", '"' + "\\ud800" + '"')
        p.value = str(rng.choice(choices)) if rng.random() < 0.7 else p.value[: int(rng.integers(len(p.value) + 1))]
    elif what == 1 and g.initializer:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        if t.raw_data:
            raw = t.raw_data
            t.raw_data = raw[: int(rng.integers(len(raw)))] if rng.random() < 0.5 else raw + b"\x00" * int(rng.integers(1, 5))
        else:
            t.data_type = int(rng.integers(1, 17))
    elif what == 2 and g.initializer:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        if t.dims:
            t.dims[int(rng.integers(len(t.dims)))] = int(rng.choice((0, 1, 2, 5, 1 << 30)))
        else:
            t.data_type = int(rng.integers(1, 17))
    elif what == 3 and g.node:
        n = g.node[int(rng.integers(len(g.node)))]
        if n.input and rng.random() < 0.6:
            n.input[int(rng.integers(len(n.input)))] = str(rng.choice(["", "x", "missing", g.node[0].output[0]]))
        elif n.attribute:
            a = n.attribute[int(rng.integers(len(n.attribute)))]
            if a.ints:
                a.ints[int(rng.integers(len(a.ints)))] = int(rng.choice(_INTS))
            else:
                a.i = int(rng.choice(_INTS))
    elif what == 4 and m.opset_import:
        m.opset_import[0].version = int(rng.choice((1, 7, 11, 18, 99)))
    elif g.value_info or g.output:
        vi = (list(g.value_info) + list(g.output))[0]
        for d in vi.type.tensor_type.shape.dim[:1]:
            d.dim_value = int(rng.choice((0, 1, 7)))
    return m.SerializeToString()


def mutate_onnx(rng: np.random.Generator, data: bytes) -> bytes:
    """Half byte-level, half field-level mutations."""
    if rng.random() < 0.5:
        return mutate_bytes(rng, data)
    try:
        return mutate_onnx_fields(rng, data)
    except Exception:  # noqa: BLE001 - a mutation protobuf cannot serialize
        return mutate_bytes(rng, data)


def onnx_checker(work: Path) -> Check:
    """check(data): `edgetk inspect` of the bytes as an .onnx file (summary and printed text)."""
    from toolkit.commands.inspect import _print, inspect_onnx

    path = Path(work) / "fuzz.onnx"
    Path(work).mkdir(parents=True, exist_ok=True)

    def check(data: bytes) -> str:
        path.write_bytes(data)
        try:
            info = inspect_onnx(path)
        except EdgetkError:
            return "refused"
        with contextlib.redirect_stdout(io.StringIO()):
            _print(info)
        json.dumps(info)
        return "accepted"

    return check


# ---------------------------------------------------------------- recipes
_TOML_VALUES = ("0", "-1", "-3", "1", "2", "0.0", "-0.5", "1e20", "-1e20", "nan", "inf", "-inf", "100000000000000000000",
                "9223372036854775808", "2.0", "5.0", "0.5", "1e-9", '""', '"x"', "true", "[]", "[1, 2]", "{}", "[[1]]",
                '"\\u0000"', "1979-05-27", "[1.0, nan]")


def recipe_seeds() -> list[bytes]:
    """The shipped recipes (models/*.toml and models/examples/*.toml)."""
    from toolkit.paths import REPO_ROOT

    return [p.read_bytes() for p in sorted((REPO_ROOT / "models").rglob("*.toml"))]


def _recipe_keys() -> list[str]:
    import dataclasses

    from toolkit.recipe import OPTIONAL_SECTIONS, SECTIONS

    return [f"{n}.{f.name}" for n, cls in {**SECTIONS, **OPTIONAL_SECTIONS}.items() for f in dataclasses.fields(cls)]


def mutate_recipe(rng: np.random.Generator, data: bytes) -> bytes:
    """A field set to a special value (as a `# --set` override line or in the TOML), a line dropped or
    duplicated, or bytes mutated (non-UTF-8, cut)."""
    r = rng.random()
    if r < 0.3:
        return mutate_bytes(rng, data)
    keys = _recipe_keys()
    key, value = str(rng.choice(keys)), str(rng.choice(_TOML_VALUES))
    if r < 0.55:
        return data + f"\n# --set {key}={value}\n".encode()
    lines = data.split(b"\n")
    if r < 0.85:
        section, name = key.split(".", 1)
        header, line = f"[{section}]".encode(), f"{name} = {value}".encode()
        if header not in lines:
            lines += [header, line]
        else:
            at = lines.index(header) + 1
            end = next((k for k in range(at, len(lines)) if lines[k].startswith(b"[")), len(lines))
            hit = next((k for k in range(at, end) if lines[k].split(b"=")[0].strip() == name.encode()), None)
            lines[hit if hit is not None else at:hit + 1 if hit is not None else at] = [line]
    elif lines:
        k = int(rng.integers(len(lines)))
        lines = lines[:k] + lines[k + 1:] if rng.random() < 0.5 else lines[:k] + [lines[k]] + lines[k:]
    return b"\n".join(lines)


def recipe_checker(work: Path) -> Check:
    """check(data): load_recipe of the bytes (with the `# --set K=V` lines as overrides); an accepted recipe must
    hold only finite, in-range numbers and survive the to_toml round trip."""
    from toolkit.recipe import load_recipe

    Path(work).mkdir(parents=True, exist_ok=True)
    path = Path(work) / "fuzz.toml"

    def check(data: bytes) -> str:
        path.write_bytes(data)
        sets = [ln[len(b"# --set "):].decode("utf-8", "replace") for ln in data.split(b"\n") if ln.startswith(b"# --set ")]
        try:
            recipe = load_recipe(path, sets)
        except EdgetkError:
            return "refused"
        _recipe_invariants(recipe)
        return "accepted"

    return check


def _recipe_invariants(recipe: Any) -> None:
    import tomllib

    from toolkit.recipe import BOUNDS, recipe_from_dict

    d = recipe.to_dict()
    for name, bound in BOUNDS.items():
        section, key = name.split(".", 1)
        v = (d.get(section) or {}).get(key)
        for x in v if isinstance(v, (list, tuple)) else (v,):
            if isinstance(x, (int, float)) and not isinstance(x, bool) and \
                    ((isinstance(x, float) and not math.isfinite(x)) or x not in bound):
                raise Finding("out-of-range-accepted", f"{name} = {x!r} accepted (valid {bound})")
    again = recipe_from_dict(tomllib.loads(recipe.to_toml()), source=recipe.path)
    if again.to_dict() != d:
        raise Finding("round-trip", "the resolved recipe does not reload to the same values")


def scratch_dir(prefix: str) -> Path:
    """A fresh temporary folder for a campaign's files."""
    return Path(tempfile.mkdtemp(prefix=prefix))


# ---------------------------------------------------------------- long runs (bench/fuzz_*.py)
TARGETS = ("tflite", "onnx", "recipe")
_SUFFIX = {"tflite": ".tflite", "onnx": ".onnx", "recipe": ".toml"}


def campaign_for(target: str, work: Path, *, external: Path | None = None, deep_every: int = 0,
                 **kw: Any) -> Report:
    """Run one target's campaign in this process (seeds, mutator, check and deep check chosen by name)."""
    work = Path(work)
    seeds, mutate = _inputs_of(target, external)
    if target == "tflite":
        check, deep = check_tflite, deep_check_tflite(work / "deep") if deep_every else None
    else:
        check, deep = (onnx_checker if target == "onnx" else recipe_checker)(work / "scratch"), None
    return run_campaign(target, seeds, mutate, check, out_dir=work / "failures", suffix=_SUFFIX[target],
                        deep=deep, deep_every=deep_every, **kw)


def _inputs_of(target: str, external: Path | None) -> tuple[list[bytes], Mutator]:
    """A target's seeds and mutator."""
    if target == "tflite":
        return tflite_seeds(external), mutate_tflite
    if target == "onnx":
        return onnx_seeds(), mutate_onnx
    if target == "recipe":
        return recipe_seeds(), mutate_recipe
    raise EdgetkError(f"unknown fuzz target {target!r}", fix=f"choose one of: {', '.join(TARGETS)}")


def baseline(target: str, work: Path, *, external: Path | None = None) -> tuple[int, int, float]:
    """The unmutated seeds through the same check: (seeds, accepted, inputs per second)."""
    seeds = _inputs_of(target, external)[0]
    check = {"tflite": lambda: check_tflite, "onnx": lambda: onnx_checker(Path(work) / "scratch"),
             "recipe": lambda: recipe_checker(Path(work) / "scratch")}[target]()
    t0 = time.monotonic()
    ok = sum(check(s) == "accepted" for s in seeds)
    return len(seeds), ok, len(seeds) / max(time.monotonic() - t0, 1e-9)


def replay(target: str, paths: list[Path], work: Path, *, per_input_s: float = 60.0) -> list[tuple[Path, str, str]]:
    """Run saved inputs through the campaign's own check, and every accepted TFLite input through the deep check
    too (seeded with the index in its name, `tflite-SEED-INDEX-KIND.tflite`, so it reruns the same samples).
    Returns (path, outcome, message) per file: outcome "accepted", "refused", or a failure kind."""
    work = Path(work)
    check = {"tflite": lambda: check_tflite, "onnx": lambda: onnx_checker(work / "scratch"),
             "recipe": lambda: recipe_checker(work / "scratch")}[target]()
    deep = deep_check_tflite(work / "deep") if target == "tflite" else None
    results = []
    for p in paths:
        data, m = Path(p).read_bytes(), re.match(r".*?-\d+-(\d+)-", Path(p).name)
        index = int(m.group(1)) if m else 0
        try:
            with _time_limit(per_input_s):
                outcome, msg = check(data), ""
                if outcome == "accepted" and deep is not None:
                    deep(data, index)
        except Finding as e:
            outcome, msg = e.kind, str(e)
        except _Timeout:
            outcome, msg = "timeout", f"more than {per_input_s:g} s"
        except Exception as e:  # noqa: BLE001 - the property under test
            outcome, msg = "traceback", f"{type(e).__name__}: {e}\n{_where(e)}"
        results.append((Path(p), outcome, msg))
    return results


def supervise(target: str, work: Path, *, n: int | None, seconds: float | None, seed: int, chunk: int = 5000,
              deep_every: int = 0, external: Path | None = None) -> Report:
    """Run a campaign in child processes of `chunk` inputs each; a child killed by a signal is a crash whose
    input (rebuilt from the seed and the last index the child wrote to its stdout) is kept in work/failures, and
    the campaign goes on after it."""
    import subprocess
    import sys

    work = Path(work)
    total, t0, start = Report(target, seed), time.monotonic(), 0
    while (n is None or start < n) and (seconds is None or time.monotonic() - t0 < seconds):
        count = chunk if n is None else min(chunk, n - start)
        left = None if seconds is None else max(seconds - (time.monotonic() - t0), 1.0)
        rep_path = work / f"chunk-{start}.json"
        cmd = [sys.executable, "-m", "toolkit.fuzz", target, "--work", str(work), "--seed", str(seed),
               "--start", str(start), "--n", str(count), "--deep-every", str(deep_every), "--report", str(rep_path),
               "--progress"]
        cmd += ["--seconds", str(left)] if left is not None else []
        cmd += ["--external", str(external)] if external is not None else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode < 0 or not rep_path.is_file():
            fails = work / "failures"
            marks = [ln for ln in proc.stdout.splitlines() if ln.isdigit()]
            idx = int(marks[-1]) if marks else start
            crash = fails / f"{target}-{seed}-{idx}-crash{_SUFFIX[target]}"
            fails.mkdir(parents=True, exist_ok=True)
            crash.write_bytes(nth_input(*_inputs_of(target, external), seed, idx))
            total.failures.append(Failure(idx, "crash", f"child exit {proc.returncode}: {proc.stderr[-500:]}",
                                          str(crash)))
            total.tried += idx - start + 1   # the chunk's accepted/refused split before the crash is lost
            start = idx + 1
            continue
        part = json.loads(rep_path.read_text())
        for k in ("tried", "accepted", "refused", "deep_checked"):
            setattr(total, k, getattr(total, k) + part[k])
        total.failures += [Failure(**f) for f in part["failures"]]
        if part["slowest_s"] > total.slowest_s:
            total.slowest_s, total.slowest_index = part["slowest_s"], part["slowest_index"]
        start += part["tried"]
        if part["tried"] < count:   # the child ran out of time
            break
    total.elapsed_s = time.monotonic() - t0
    return total


def main(argv: list[str] | None = None) -> int:
    """`python -m toolkit.fuzz TARGET ...`: one in-process campaign chunk (the child of `supervise`)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m toolkit.fuzz")
    p.add_argument("target", choices=TARGETS)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--deep-every", type=int, default=0)
    p.add_argument("--external", type=Path, default=None)
    p.add_argument("--report", type=Path, required=True)
    p.add_argument("--progress", action="store_true", help="write each input's index to stdout before checking it")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    kill_at = int(os.environ.get("EDGETK_FUZZ_SELFTEST_KILL_AT", -1))   # the crash path's self-test (tests only)

    def mark(i: int) -> None:   # one unbuffered pipe write per input (a file per input cost ~20 % of the run)
        os.write(1, b"%d\n" % i)
        if i == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    rep = campaign_for(a.target, a.work, external=a.external, deep_every=a.deep_every, n=a.n, seconds=a.seconds,
                       seed=a.seed, start=a.start, mark=mark if a.progress else None)
    a.report.write_text(json.dumps(rep.to_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def bench_main(target: str, *, default_seconds: float, default_deep_every: int = 0) -> int:
    """The command line of bench/fuzz_*.py: a supervised campaign, then its report beside the seeds' baseline."""
    import argparse

    from toolkit.paths import REPO_ROOT, shared_dir

    p = argparse.ArgumentParser(description=f"fuzz campaign: {target}")
    p.add_argument("--n", type=int, default=None, help="inputs to try (default: as many as --seconds allows)")
    p.add_argument("--seconds", type=float, default=None, help=f"time budget (default {default_seconds:g} s without --n)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=5000, help="inputs per child process")
    p.add_argument("--deep-every", type=int, default=default_deep_every, help="deep-check every k-th accepted input")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out" / f"fuzz-{target}")
    p.add_argument("--replay", type=Path, nargs="+", default=None, metavar="FILE",
                   help="run saved inputs (a campaign's failures/) through the check and the deep check instead")
    a = p.parse_args()
    external = shared_dir() / "external"
    if a.replay:
        results = replay(target, a.replay, a.out)
        for path, outcome, msg in results:
            print(f"{path.name}: {outcome}" + (f": {msg.splitlines()[0][:300]}" if msg else ""))
        failing = [r for r in results if r[1] not in ("accepted", "refused")]
        print(f"replayed {len(results)} inputs: {len(results) - len(failing)} pass "
              f"({sum(r[1] == 'accepted' for r in results)} accepted, {sum(r[1] == 'refused' for r in results)} "
              f"refused with one EdgetkError), {len(failing)} still fail")
        return 1 if failing else 0
    seconds = a.seconds if a.seconds is not None or a.n is not None else default_seconds
    a.out.mkdir(parents=True, exist_ok=True)
    n_seeds, ok, rate = baseline(target, a.out, external=external)
    rep = supervise(target, a.out, n=a.n, seconds=seconds, seed=a.seed, chunk=a.chunk, deep_every=a.deep_every,
                    external=external)
    print(f"baseline: {ok}/{n_seeds} unmutated seeds accepted ({rate:.0f} inputs/s)")
    print(rep.summary())
    per_s = rep.tried / rep.elapsed_s if rep.elapsed_s else 0.0
    if per_s:
        print(f"1,000,000 inputs at this rate: {1e6 / per_s / 3600:.2f} h on this machine")
    (a.out / "report.json").write_text(json.dumps(rep.to_json(), indent=1))
    return 1 if rep.failures else 0
