"""Generation-time specialisation of lowered steps for the `dsp` kernel set (kernels/dsp, et_dsp.h).

Each conv, depthwise conv (any multiplier), fully-connected, same-shape ADD, average and max pool step
whose integer arithmetic the dsp kernels reproduce exactly is rewritten: the input offset folded into the
bias (padding reads the input zero point), weights re-laid out in the SIMD access order (int8, or doubled
int16 with `optimize="speed"`), and per-channel requantization pairs {multiplier, rounding + output offset
<< shift} whose bounds are checked here, so the kernels need no run-time checks; the kernel variant is
picked by shape (1x1, 3x3 depthwise, in place by pixels or rows). A step that fails a check keeps its
portable kernel (the set falls back to `fast`/`reference`): same bits either way.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable

import numpy as np

from toolkit.codegen.lower import Step
from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)

OPTIMIZE = ("size", "speed")
FLASH_RESERVE = 64 * 1024   # bytes of flash kept for firmware + library code when speed widens weights
MAX_AVG_WINDOW = 256        # 16-bit lane sums of et_dsp_avg_pool stay exact up to 256 pixels
_LIMIT = 1 << 31            # int32: |value| < 2^31


def check_optimize(optimize: str) -> str:
    """The optimize mode, or one EdgetkError naming the choices."""
    if optimize not in OPTIMIZE:
        raise EdgetkError(f"unknown optimize mode '{optimize}'", fix=f"use one of: {', '.join(OPTIMIZE)}")
    return optimize


def rescale_row(mult: int, shift: int, offset: int, bound2: int, *, allow_e0: bool = False) -> tuple[int, ...] | None:
    """(multiplier, rounding + offset << e, e) computing MultiplyByQuantizedMultiplier(x, mult, shift) + offset
    from x2 = 2x with |x2| <= bound2 as (SMMLAR(x2, mult, c) + (x2 >> 31)) >> e; None when not exact.

    floor((x2 * m + 2^31) / 2^32) is TFLite's doubling high multiply of x (no saturation: m < 2^31); the
    rounding divide by 2^e then needs x's sign only where the high product is non-zero, where they agree."""
    e = -shift
    if shift > 0 or mult < 0 or bound2 >= _LIMIT or (e == 0 and not allow_e0) or e > 30:
        return None
    c = (1 << (e - 1) if e else 0) + offset * (1 << e)
    high = (bound2 * mult + (1 << 31)) // (1 << 32) + 1
    if abs(c) + high + 1 >= _LIMIT or (e == 0 and offset != 0):
        return None
    return mult, c, e


def _rq(step: Step, bounds: np.ndarray, offset: int) -> tuple[np.ndarray, int] | None:
    """Requantization pairs {multiplier, c} per channel (the shift is 1 + trailing zeros of c) and the row
    stride: 0 when one pair serves every channel (per-tensor scales)."""
    rows = [rescale_row(int(m), int(s), offset, 2 * int(b)) for m, s, b in
            zip(step.arrays["mult"], step.arrays["shift"], bounds)]
    if any(r is None for r in rows):
        return None
    pairs = np.array([r[:2] for r in rows], np.int32)
    assert all((c & -c) == 1 << (e - 1) for _, c, e in rows)  # e = 1 + trailing zeros of c
    return (pairs[:1].reshape(-1), 0) if (pairs == pairs[0]).all() else (pairs.reshape(-1), 2)


def _folded(step: Step, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bias + input_offset * sum(w) per output channel, |accumulator| bound) of weights w [channels, k]."""
    bias = step.arrays.get("bias", np.zeros(len(w), np.int32)).astype(np.int64)
    bound = 255 * np.abs(w).sum(axis=1) + np.abs(bias)
    return bias + step.fields["input_offset"] * w.sum(axis=1), bound


def _pad_rows(a: np.ndarray, multiple: int) -> np.ndarray:
    extra = -len(a) % multiple
    return np.concatenate([a, np.zeros((extra,) + a.shape[1:], a.dtype)]) if extra else a


def _simd_weights(w: np.ndarray, rows: int, wide: bool) -> np.ndarray:
    """w [channels, 4 * groups] -> per block of `rows` channels, per group, `rows` x 4 values; wide: doubled
    int16 in the order k0, k2, k1, k3 (what SXTB16 makes of the input bytes)."""
    w = _pad_rows(w, rows)
    blocks, groups = len(w) // rows, w.shape[1] // 4
    g = w.reshape(blocks, rows, groups, 4).transpose(0, 2, 1, 3)
    return (2 * g[..., [0, 2, 1, 3]]).astype(np.int16).reshape(-1) if wide else g.astype(np.int8).reshape(-1)


def _gemm_parts(step: Step, w: np.ndarray, rows: int, wide: bool) -> dict | None:
    """Arrays (filter, bias, rq) of a conv/FC step with weights w [channels, k] (k padded to 4 here)."""
    w = w.astype(np.int64)
    bias, bound = _folded(step, w)
    rq = _rq(step, bound, step.fields["output_offset"])
    if rq is None:
        return None
    k = w.shape[1]
    w4 = np.concatenate([w, np.zeros((len(w), -k % 4), np.int64)], axis=1)
    bias = _pad_rows(bias * (2 if wide else 1), rows)
    pairs = rq[0].reshape(-1, 2)
    if rq[1]:  # padding rows get a harmless pair (multiplier 0, shift 1): the kernels compute them unseen
        pairs = np.concatenate([pairs, np.tile(np.array([[0, 1]], np.int32), (-len(pairs) % rows, 1))])
    return {"filter": _simd_weights(w4, rows, wide), "bias": bias.astype(np.int32), "rq": pairs.reshape(-1),
            "rq_stride": rq[1]}


def _conv(step: Step, wide: bool) -> Step | None:
    f, w = step.fields, step.arrays["filter"]
    oc = w.shape[0]
    parts = _gemm_parts(step, w.reshape(oc, -1), 2, wide)
    if parts is None:
        return None
    rq_stride = parts.pop("rq_stride")
    groups = -(-w[0].size // 4)
    fields = {k: f[k] for k in ("batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w",
                                "stride_h", "stride_w", "dil_h", "dil_w", "pad_h", "pad_w", "act_min", "act_max")}
    fields.update(groups=groups, in_zp=-f["input_offset"], rq_stride=rq_stride)
    pointwise = (f["k_h"], f["k_w"], f["pad_h"], f["pad_w"], f["in_c"] % 4) == (1, 1, 0, 0, 0)
    func = ("et_dsp_conv1x1" if pointwise else "et_dsp_conv") + ("_w16" if wide else "_w8")
    cols = 20 * groups  # ET_DSP_CONV_COLS
    inplace, suffix, inplace_scratch = _conv_inplace(step, cols)
    return dataclasses.replace(step, family="et_dsp_conv", func=func, struct="et_dsp_conv_params", fields=fields,
                               arrays=parts, scratch=cols, inplace=inplace,
                               inplace_func=func + suffix if suffix else "", inplace_scratch=inplace_scratch)


def _conv_inplace(step: Step, cols: int) -> tuple[int | None, str, int]:
    """(inplace, suffix of the in-place entry point, scratch bytes in place) for a conv the lowering allows in place.

    A 1x1 stride-1 unpadded conv with out_c <= in_c reads both pixels of a pair before writing them, so it runs
    in place as it is (suffix ""); others wait in a ring of pixels (stride 1, same width, out_c <= in_c) or of
    pad_h + 1 rows, whichever is smaller, as the portable kernels do."""
    f = step.fields
    if step.inplace is None or f["batches"] != 1:
        return None, "", 0
    same = f["stride_h"] == f["stride_w"] == 1 and f["out_w"] == f["in_w"] and f["out_c"] <= f["in_c"]
    if same and f["k_h"] == f["k_w"] == 1 and f["pad_h"] == f["pad_w"] == 0:
        return 0, "", cols
    out_row, out_bytes = f["out_w"] * f["out_c"], f["out_h"] * f["out_w"] * f["out_c"]
    rings = [("_inplace", (f["pad_h"] + 1) * out_row)] if out_row <= f["in_w"] * f["in_c"] else []
    if same:
        rings.append(("_inplace_px", ((f["pad_h"] * f["out_w"] + f["pad_w"] + 3) & ~1) * f["out_c"]))
    rings = [r for r in rings if r[1] < out_bytes]
    if not rings:
        return None, "", 0
    suffix, ring = min(rings, key=lambda r: r[1])
    return 0, suffix, cols + ring


def _fc(step: Step, wide: bool) -> Step | None:
    f, w = step.fields, step.arrays["filter"]
    if f["filter_offset"] != 0 or f["in_depth"] % 4:
        return None
    parts = _gemm_parts(step, w, 4, wide)
    if parts is None:
        return None
    fields = {k: f[k] for k in ("batches", "in_depth", "out_depth", "act_min", "act_max")}
    fields.update(groups=f["in_depth"] // 4, rq_stride=parts.pop("rq_stride"))
    return dataclasses.replace(step, family="et_dsp_fc", func="et_dsp_fc_w16" if wide else "et_dsp_fc_w8",
                               struct="et_dsp_fc_params", fields=fields, arrays=parts)


_SWAP_HW = {"in_h": "in_w", "out_h": "out_w", "k_h": "k_w", "stride_h": "stride_w", "dil_h": "dil_w", "pad_h": "pad_w",
            "in_sy": "in_sx", "out_sy": "out_sx"}


def _transpose_dw(f: dict) -> bool:
    """Run a depthwise conv on the transposed image: taps of a column kernel along the plane rows, and the
    3x3 stride-1 kernel (four outputs per pass along a row) along the longer output side."""
    if f["k_w"] == 1 < f["k_h"]:
        return True
    square = f["k_h"] == f["k_w"] == 3 and f["stride_h"] == f["stride_w"] == 1 and f["dil_h"] == f["dil_w"] == 1
    return square and f["out_h"] > f["out_w"]


def _dw(step: Step, wide: bool) -> Step | None:  # noqa: ARG001 - depthwise weights stay int8 (widened per channel)
    f = dict(step.fields)
    w = step.arrays["filter"]  # [1, k_h, k_w, out_c], out channel c reads input channel c // multiplier
    mult = f["depth_multiplier"]
    if f["in_c"] % 4 or f["in_c"] * mult != f["out_c"]:
        return None
    wc = w.reshape(-1, f["out_c"]).T.astype(np.int64)  # [channels, k_h * k_w]
    bias, bound = _folded(step, wc)
    rq = _rq(step, bound, f["output_offset"])
    if rq is None:
        return None
    filt = wc.reshape(f["out_c"], f["k_h"], f["k_w"])
    f.update(in_sy=f["in_w"], in_sx=1, out_sy=f["out_w"], out_sx=1)
    if _transpose_dw(f):
        f.update({a: f[b] for a, b in _SWAP_HW.items()} | {b: f[a] for a, b in _SWAP_HW.items()})
        filt = filt.transpose(0, 2, 1)
    plane_h = (f["out_h"] - 1) * f["stride_h"] + (f["k_h"] - 1) * f["dil_h"] + 1
    pairs = (f["k_w"] + 1) // 2  # taps read in pairs: an odd kernel's last pair reads one spare column
    plane_w = (f["out_w"] - 1) * f["stride_w"] + (2 * pairs - 1) * f["dil_w"] + 1
    plane_w += plane_w % 2
    fields = {k: f[k] for k in ("batches", "in_h", "in_w", "out_h", "out_w", "in_sy", "in_sx", "out_sy", "out_sx",
                                "k_h", "k_w", "stride_h", "stride_w", "dil_h", "dil_w", "pad_h", "pad_w", "act_min",
                                "act_max")}
    fields.update(channels=f["in_c"], out_c=f["out_c"], multiplier=mult, plane_h=plane_h, plane_w=plane_w,
                  in_zp=-f["input_offset"], rq_stride=rq[1])
    scratch = 8 * plane_h * plane_w + 4 * max(6, f["k_h"] * ((f["k_w"] + 1) // 2))
    arrays = {"filter": filt.astype(np.int8).reshape(-1), "bias": (2 * bias).astype(np.int32), "rq": rq[0]}
    inplace = 0 if step.inplace is not None and mult == 1 else None  # with multiplier 1 a block is read first
    fast = (f["k_h"], f["k_w"], f["stride_w"], f["dil_w"]) == (3, 3, 1, 1)
    return dataclasses.replace(step, family="et_dsp_dw", func="et_dsp_dw3x3" if fast else "et_dsp_dw",
                               struct="et_dsp_dw_params", fields=fields,
                               arrays=arrays, scratch=scratch, inplace=inplace, inplace_func="",
                               inplace_scratch=scratch if inplace is not None else 0)


def _add(step: Step, wide: bool) -> Step | None:  # noqa: ARG001
    f = step.fields
    shape = f["out_shape"]
    dense = [int(np.prod(shape[d + 1:])) for d in range(4)]
    if f["in1_stride"] != dense or f["in2_stride"] != dense or f["left_shift"] != 20:
        return None
    bound_x2 = 255 << 21
    ins = [rescale_row(f[f"in{i}_mult"], f[f"in{i}_shift"], 0, bound_x2, allow_e0=True) for i in (1, 2)]
    if None in ins:
        return None
    sums = sum((bound_x2 * m + (1 << 31)) // (1 << 32) + abs(c) + 1 for m, c, _ in ins)
    out = rescale_row(f["out_mult"], f["out_shift"], f["output_offset"], 2 * sums)
    if out is None:
        return None
    offsets = [f["in1_offset"], f["in2_offset"]]
    unit = [m == 1 << 30 and e == 0 for m, _, e in ins]  # MultiplyByQuantizedMultiplier(x, 2^30, 0) = x / 2, x even
    if not any(unit):  # TFLite rescales the input of the larger scale by 1/2 exactly: never seen otherwise
        return None
    order = (0, 1) if unit[1] else (1, 0)  # the sum is symmetric: the unit input goes second
    (m, c, e), off = ins[order[0]], offsets[order[0]]
    fields = {"n": int(np.prod(shape)), "act_min": f["act_min"], "act_max": f["act_max"],
              "k1": off * (1 << 21), "m1": m, "c1": c, "z1": -1 if e else 0, "e1": e,
              "k2": offsets[order[1]] * (1 << 20), "mo": out[0], "co": out[1], "eo": out[2]}
    inplace = None if step.inplace is None else order.index(step.inplace)
    return dataclasses.replace(step, family="et_dsp_add", func="et_dsp_add", struct="et_dsp_add_params",
                               fields=fields, inputs=tuple(step.inputs[i] for i in order), inplace=inplace)


def _pool(step: Step, wide: bool) -> Step | None:  # noqa: ARG001
    f = step.fields
    if f["channels"] % 4 or (step.func == "et_avg_pool_s8" and f["k_h"] * f["k_w"] > MAX_AVG_WINDOW):
        return None
    func = "et_dsp_avg_pool" if step.func == "et_avg_pool_s8" else "et_dsp_max_pool"
    return dataclasses.replace(step, family="et_dsp_pool", func=func)


RULES: dict[str, Callable[[Step, bool], Step | None]] = {
    "et_conv2d_s8": _conv,
    "et_depthwise_conv2d_s8": _dw,
    "et_fully_connected_s8": _fc,
    "et_add_s8": _add,
    "et_avg_pool_s8": _pool,
    "et_max_pool_s8": _pool,
}
WIDENABLE = ("et_conv2d_s8", "et_fully_connected_s8")


def _widened(steps: list[Step], optimize: str, flash_bytes: int | None) -> set[int]:
    """Steps whose weights `speed` stores as int16: all, or (with a flash size) the most reused first."""
    if optimize != "speed":
        return set()
    cand = [s for s in steps if s.func in WIDENABLE]
    if flash_bytes is None:
        return {s.index for s in cand}
    room = flash_bytes - FLASH_RESERVE - sum(a.nbytes for s in steps for a in s.arrays.values())
    chosen = set()
    for s in sorted(cand, key=lambda s: (-s.macs / max(s.arrays["filter"].size, 1), s.index)):
        extra = s.arrays["filter"].size + 2 * s.arrays["filter"].shape[0]  # int8 -> int16 (+ padding)
        if extra <= room:
            chosen.add(s.index)
            room -= extra
    return chosen


def specialize(steps: list[Step], *, optimize: str = "size", flash_bytes: int | None = None) -> list[Step]:
    """The steps rewritten for the dsp kernels (see the module docstring); others unchanged."""
    check_optimize(optimize)
    wide = _widened(steps, optimize, flash_bytes)
    out = []
    for s in steps:
        rule = None if s.alias else RULES.get(s.func)
        new = rule(s, s.index in wide) if rule else None
        if rule and new is None:
            log.info("operator %d (%s) keeps its portable kernel: outside the dsp kernels' exact range", s.index, s.op)
        out.append(new or s)
    return out


def summary(steps: list[Step]) -> dict:
    """What specialisation did, for plan.json: dsp kernels used, int16-weight steps, weight bytes."""
    weights = sum(a.nbytes for s in steps for k, a in s.arrays.items() if k in ("filter", "bias"))
    return {"dsp_steps": sum(s.family.startswith("et_dsp") for s in steps),
            "int16_weight_steps": [s.index for s in steps if s.func.endswith("_w16")],
            "weight_bytes": int(weights)}
