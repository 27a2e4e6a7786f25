"""Compile a generated C library with the host gcc into a batch runner, and run inputs through it.

The runner reads inputs back to back from stdin (EDGETK_INPUT_SIZE bytes each: int8 values, or
float32 little-endian for float32-input models) and writes EDGETK_OUTPUT_SIZE bytes per input to stdout.
"""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from pathlib import Path

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.tools import require_tool

log = logging.getLogger(__name__)

CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-O2")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")

MAIN_C = r"""/* edgetk host runner: int8 inputs on stdin -> int8 outputs on stdout. */
#include <stdio.h>
#include "edgetk_model.h"

static int8_t in_buf[EDGETK_INPUT_SIZE];
static int8_t out_buf[EDGETK_OUTPUT_SIZE];

int main(void)
{
    while (fread(in_buf, 1, sizeof in_buf, stdin) == sizeof in_buf) {
        if (edgetk_invoke(in_buf, out_buf) != 0) {
            return 3;
        }
        if (fwrite(out_buf, 1, sizeof out_buf, stdout) != sizeof out_buf) {
            return 4;
        }
    }
    return 0;
}
"""


def c_sources(lib_dir: str | os.PathLike) -> list[Path]:
    """Every .c file of a generated library (what firmware builds compile too)."""
    return sorted(Path(lib_dir).rglob("*.c"))


def compile_host(lib_dir: str | os.PathLike, exe: str | os.PathLike, *, sanitize: bool = False,
                 cc: str = "gcc", extra: tuple[str, ...] = (), object_cache: str | os.PathLike | None = None) -> Path:
    """Build the host runner for a generated library; errors carry the compiler's output.

    `object_cache`: a folder where each kernel file's object is kept, keyed by the compiler, the flags, its text
    and the text of every header in kernels/ (all a kernel includes), and reused by later builds (a fuzz campaign
    builds thousands of libraries from the same few kernels). Every file is still compiled with the same flags."""
    lib_dir, exe = Path(lib_dir), Path(exe)
    require_tool(cc, "build the host runner")
    exe.parent.mkdir(parents=True, exist_ok=True)
    main = exe.with_suffix(".main.c")
    main.write_text(MAIN_C)
    opts = [*CFLAGS, *(SANITIZE if sanitize else ()), *extra]
    sources = c_sources(lib_dir)
    if object_cache is not None:
        sources = [_kernel_object(cc, opts, s, Path(object_cache)) if s.parent == lib_dir / "kernels" else s
                   for s in sources]
    _cc([cc, *opts, "-I", str(lib_dir), "-I", str(lib_dir / "kernels"), str(main), *map(str, sources), "-o", str(exe)],
        lib_dir)
    return exe


def _cc(cmd: list[str], lib_dir: Path) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EdgetkError(f"host compile of {lib_dir} failed:\n{proc.stderr[-4000:]}",
                          fix="report this with the model: generated C must compile warning-free")


def _kernel_object(cc: str, opts: list[str], src: Path, cache: Path) -> Path:
    """The object of one kernel file from the cache, compiled (-c, the same options) into it when missing."""
    h = hashlib.sha256("\0".join([cc, *opts, src.name]).encode())
    for p in [src, *sorted(src.parent.glob("*.h"))]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    obj = cache / f"{src.stem}-{h.hexdigest()[:24]}.o"
    if not obj.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        copy = obj.with_suffix(".c")   # compiled from here: a sanitizer report names the cache's file, that stays
        copy.write_bytes(src.read_bytes())
        tmp = obj.with_suffix(f".{os.getpid()}.tmp.o")
        _cc([cc, *opts, "-I", str(src.parent), "-c", str(copy), "-o", str(tmp)], src.parent.parent)
        os.replace(tmp, obj)
    return obj


def run_host(exe: str | os.PathLike, x: np.ndarray, output_size: int, *, timeout: float = 120,
             dtype: np.dtype | type = np.int8) -> np.ndarray:
    """Run a batch of inputs through the host runner; returns [N, output_size] of dtype.

    x is int8, or float32 for models with a float32 input; output_size counts elements of dtype.
    """
    x = np.ascontiguousarray(x, dtype=np.float32 if x.dtype == np.float32 else np.int8)
    proc = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True, timeout=timeout)
    if proc.returncode != 0 or proc.stderr:
        raise EdgetkError(f"{exe} failed (exit {proc.returncode}):\n{proc.stderr.decode(errors='replace')[-4000:]}")
    out = np.frombuffer(proc.stdout, dtype=np.dtype(dtype).newbyteorder("<"))
    if out.size != len(x) * output_size:
        raise EdgetkError(f"{exe} wrote {out.size} values for {len(x)} inputs of {output_size} outputs")
    return out.reshape(len(x), output_size)
