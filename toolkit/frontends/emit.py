"""Pure C text generation for the frontends: const arrays and the edgetk_frontend.h contract."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def c_array(ctype: str, name: str, values: Iterable[int], per_line: int = 12) -> str:
    """`static const <ctype> <name>[n] = {...};` with integer values."""
    vals = [int(v) for v in np.asarray(list(values) if not isinstance(values, np.ndarray) else values).reshape(-1)]
    suffix = "ull" if ctype == "uint64_t" else ""
    rows = [", ".join(f"{v}{suffix}" for v in vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    body = ",\n    ".join(rows)
    return f"static const {ctype} {name}[{len(vals)}] = {{\n    {body},\n}};\n"


def brace(shape: Sequence[int]) -> str:
    """A C brace initializer of a shape: {49, 10}."""
    return "{" + ", ".join(str(int(s)) for s in shape) + "}"


def header(kind: str, comment: str, raw_shape: Sequence[int], feat_shape: Sequence[int], frac_bits: int,
           scale: float, zero_point: int, stream: dict[str, int] | None) -> str:
    """edgetk_frontend.h: the contract the firmware compiles against."""
    raw_size = int(np.prod(raw_shape))
    feat_size = int(np.prod(feat_shape))
    lines = [f"/* edgetk frontend \"{kind}\" (generated; do not edit): int16 raw samples -> int8 model input.",
             *(f" * {c}" for c in comment.splitlines()),
             " * edgetk_features returns 0 on success; its scratch is static in edgetk_frontend.c (not reentrant). */",
             "#ifndef EDGETK_FRONTEND_H", "#define EDGETK_FRONTEND_H", "", "#include <stdint.h>", "",
             f'#define EDGETK_FRONTEND_TYPE "{kind}"',
             f"#define EDGETK_RAW_SIZE {raw_size}          /* int16 values per window (samples x channels) */",
             f"#define EDGETK_RAW_SHAPE {brace(raw_shape)}",
             f"#define EDGETK_FEATURES_SIZE {feat_size}     /* int8 values = the model's EDGETK_INPUT_SIZE */",
             f"#define EDGETK_FEATURES_SHAPE {brace(feat_shape)}  /* [T, C] row-major = NHWC input */",
             f"#define EDGETK_FEATURES_FRAC_BITS {frac_bits}  /* stage-1 int16 features: value * 2^{frac_bits} */",
             f"#define EDGETK_FEATURES_SCALE {scale!r}f  /* model input scale (power of two) */",
             f"#define EDGETK_FEATURES_ZERO_POINT {zero_point}", "",
             "int edgetk_features(const int16_t *raw, int8_t *features);",
             "/* stage 1 only: int16 features [T, C] in Q(EDGETK_FEATURES_FRAC_BITS) */",
             "int edgetk_features_stage1(const int16_t *raw, int16_t *stage1);"]
    if stream:
        lines += ["", "/* Streaming: one call per hop of new samples; a row of int8 features once a frame is full.",
                  " * Row i of the stream equals row i of edgetk_features over the same samples. */",
                  "#define EDGETK_STREAMING 1", f"#define EDGETK_HOP {stream['hop']}",
                  f"#define EDGETK_FRAME_LEN {stream['frame_len']}", f"#define EDGETK_ROW_SIZE {stream['row']}",
                  "typedef struct {", "    int16_t hist[EDGETK_FRAME_LEN];", "    int32_t filled;",
                  "} edgetk_stream_t;", "void edgetk_stream_init(edgetk_stream_t *s);",
                  "int edgetk_stream_push(edgetk_stream_t *s, const int16_t *hop_samples, int8_t *row);"]
    else:
        lines += ["", "#define EDGETK_STREAMING 0"]
    return "\n".join(lines + ["", "#endif", ""])


def stage2_arrays(st: "object") -> str:
    """The stage-2 integers as const arrays g_off/g_mul/g_shift."""
    return (c_array("int32_t", "g_off", st.off) + c_array("int32_t", "g_mul", st.mul)
            + c_array("int32_t", "g_shift", st.shift))
