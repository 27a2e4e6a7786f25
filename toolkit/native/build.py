"""Host and cross builds of C sources: shared libraries for ctypes, sanitizer executables, link checks.

Host builds are cached under $EDGETK_CACHE/native/ by a hash of the sources, the flags and the
compiler's version, and appear atomically (compiled under a temporary name, then renamed), so two
processes building the same library never see a half-written file.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

from toolkit.errors import EdgetkError
from toolkit.tools import require_tool

log = logging.getLogger(__name__)

HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")
# Cortex-M4 link check: no libc, no libgcc helpers, no startup files; unused sections dropped.
CROSS_CPUS = {"cortex-m4": ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft"),
              "cortex-m4f": ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
              "cortex-m7": ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=soft")}
CROSS_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections")


def cache_root() -> Path:
    """<cache>/native (toolkit.paths.cache_dir: $EDGETK_CACHE, $XDG_CACHE_HOME/edgetk or ~/.cache/edgetk)."""
    from toolkit.paths import cache_dir

    return cache_dir("native")


def _compiler_id(cc: str) -> str:
    proc = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
    return proc.stdout.splitlines()[0] if proc.stdout else cc


def source_digest(sources: Iterable[Path], flags: Iterable[str], cc: str = "gcc") -> str:
    """sha256 over the sources' names and bytes, the flags and the compiler version (a cache key)."""
    h = hashlib.sha256()
    for src in sorted(Path(s) for s in sources):
        h.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    h.update("\0".join(flags).encode())
    h.update(_compiler_id(cc).encode())
    return h.hexdigest()


def _headers_of(sources: list[Path], include_dirs: list[Path]) -> list[Path]:
    """Every .h in the include folders and beside the sources (they are part of what is compiled)."""
    dirs = {p.parent for p in sources} | set(include_dirs)
    return sorted({h for d in dirs for h in Path(d).glob("*.h")})


def _compile(cc: str, args: list[str], out: Path, what: str) -> Path:
    """Run the compiler into a temporary name beside `out`, then rename (atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        proc = subprocess.run([cc, *args, "-o", tmp], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise EdgetkError(f"compiling {what} failed:\n{proc.stderr[-4000:]}",
                              fix="report this as an edgetk bug: its C must compile warning-free")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _build(sources: list[Path], include_dirs: list[Path], flags: tuple[str, ...], suffix: str, what: str,
           cc: str, cache: Path | None = None) -> Path:
    require_tool(cc, f"build {what}")
    inc = [f"-I{d}" for d in include_dirs]
    key = source_digest(sources + _headers_of(sources, include_dirs), (*flags, *inc, suffix), cc)[:32]
    out = (cache or cache_root()) / f"{what.replace(' ', '_')}-{key}{suffix}"
    if out.is_file():
        return out
    log.info("compiling %s (%d sources)", what, len(sources))
    return _compile(cc, [*flags, *inc, *map(str, sources)], out, what)


def build_shared(sources: Iterable[str | os.PathLike], include_dirs: Iterable[str | os.PathLike] = (), *,
                 name: str = "lib", extra_flags: tuple[str, ...] = (), cc: str = "gcc",
                 cache: str | os.PathLike | None = None) -> Path:
    """A host shared library of `sources` (gcc -std=c99 -O2 -fPIC -shared -Werror), cached by content (in
    `cache`, default cache_root())."""
    flags = (*HOST_CFLAGS, "-fPIC", "-shared", *extra_flags)
    return _build([Path(s) for s in sources], [Path(d) for d in include_dirs], flags, ".so", name, cc,
                  Path(cache) if cache is not None else None)


def build_executable(sources: Iterable[str | os.PathLike], include_dirs: Iterable[str | os.PathLike] = (), *,
                     name: str = "exe", sanitize: bool = False, extra_flags: tuple[str, ...] = (),
                     cc: str = "gcc") -> Path:
    """A host executable of `sources`; sanitize=True adds ASan + UBSan (every report is fatal)."""
    flags = (*HOST_CFLAGS, *(SANITIZE_FLAGS if sanitize else ()), *extra_flags)
    return _build([Path(s) for s in sources], [Path(d) for d in include_dirs], flags,
                  "-asan" if sanitize else "", name, cc)


def load_shared(path: str | os.PathLike) -> ctypes.CDLL:
    """ctypes handle of a shared library built by build_shared."""
    try:
        return ctypes.CDLL(str(path))
    except OSError as e:
        raise EdgetkError(f"cannot load {path}: {e}", fix=f"delete {cache_root()} and retry") from None


def cross_link_check(sources: Iterable[str | os.PathLike], include_dirs: Iterable[str | os.PathLike], out_dir: str |
                     os.PathLike, *, entry: str, cpu: str = "cortex-m4", opt: str = "-O2",
                     keep: tuple[str, ...] = ()) -> Path:
    """Compile `sources` for `cpu` at `opt` and link them with -nostdlib (no libc, no libgcc) from `entry`
    (and the symbols in `keep`); returns the ELF.

    A link error names every symbol the code needs from outside (the check fails on any)."""
    if cpu not in CROSS_CPUS:
        raise EdgetkError(f"unknown cpu {cpu!r}", fix=f"choose one of: {', '.join(CROSS_CPUS)}")
    gcc = require_tool("arm-none-eabi-gcc", "cross-compile for Cortex-M")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    elf = out_dir / f"{entry}-{cpu}{opt}.elf"
    args = [*CROSS_CFLAGS, opt, *CROSS_CPUS[cpu], *(f"-I{d}" for d in include_dirs), *map(str, sources),
            "-nostdlib", "-nostartfiles", "-Wl,--gc-sections", f"-Wl,-e,{entry}",
            *(f"-Wl,--undefined={s}" for s in (entry, *keep))]
    return _compile(gcc, args, elf, f"{entry} for {cpu}")
