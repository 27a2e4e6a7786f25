"""Cross-compile a generated library for Cortex-M and read flash/RAM from arm-none-eabi-size.

The library is linked alone (no libc, no startup, entry = edgetk_invoke, unused sections dropped),
which also proves it needs nothing from a C library.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from toolkit.codegen.host import c_sources
from toolkit.errors import EdgetkError
from toolkit.tools import require_tool

log = logging.getLogger(__name__)

CPUS = {"cortex-m4": ("-mcpu=cortex-m4", "-mfloat-abi=soft"),
        "cortex-m7": ("-mcpu=cortex-m7", "-mfloat-abi=soft")}
CFLAGS = ("-std=c99", "-mthumb", "-O2", "-Wall", "-Wextra", "-Werror", "-ffunction-sections",
          "-fdata-sections")


@dataclass(frozen=True)
class Size:
    """Bytes per section family of a linked image."""

    text: int
    rodata: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        """Code + constants + initialised data (its load image)."""
        return self.text + self.rodata + self.data

    @property
    def ram(self) -> int:
        """Static RAM: initialised data + zeroed data (the arena lives in .bss)."""
        return self.data + self.bss


_SECTION = re.compile(r"^(\.\S+)\s+(\d+)\s+(\d+)\s*$", re.M)


def parse_size_sysv(text: str) -> Size:
    """Parse `arm-none-eabi-size -A` output into text/rodata/data/bss totals."""
    acc = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for name, size, _addr in _SECTION.findall(text):
        for key in ("rodata", "text", "data", "bss"):
            if name.startswith(f".{key}"):
                acc[key] += int(size)
                break
    return Size(**acc)


def _tool(name: str) -> str:
    return require_tool(name, "cross-build for Cortex-M")


def cross_build(lib_dir: str | os.PathLike, out_dir: str | os.PathLike, cpu: str) -> Size:
    """Compile every .c of the library for `cpu`, link it stand-alone and measure it."""
    lib_dir, out_dir = Path(lib_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gcc = _tool("arm-none-eabi-gcc")
    elf = out_dir / f"edgetk-{cpu}.elf"
    cmd = [gcc, *CFLAGS, *CPUS[cpu], "-I", str(lib_dir), "-I", str(lib_dir / "kernels"),
           *map(str, c_sources(lib_dir)), "-nostdlib", "-nostartfiles", "-Wl,--gc-sections",
           "-Wl,-e,edgetk_invoke", "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EdgetkError(f"cross compile for {cpu} failed:\n{proc.stderr[-4000:]}",
                          fix="report this with the model: generated C must build for Cortex-M")
    size = subprocess.run([_tool("arm-none-eabi-size"), "-A", str(elf)], capture_output=True,
                          text=True, check=True)
    return parse_size_sysv(size.stdout)


def undefined_symbols(nm_text: str) -> set[str]:
    """Symbols `nm -u` lists as undefined, minus the kernels' own et_* API (pure: takes the text)."""
    names = {line.split()[-1] for line in nm_text.splitlines() if line.strip().startswith("U ")}
    return {n for n in names if not n.startswith("et_")}


def kernel_set_imports(kernels: str, cpu: str, out_dir: str | os.PathLike) -> set[str]:
    """Compile every C file of a kernel set for `cpu`; the symbols it needs from outside (want: none)."""
    from toolkit.codegen.kernel_sets import KERNEL_ROOT, KERNEL_SETS

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gcc, nm = _tool("arm-none-eabi-gcc"), _tool("arm-none-eabi-nm")
    found: set[str] = set()
    for folder in KERNEL_SETS[kernels]:
        for src in sorted((KERNEL_ROOT / folder).glob("*.c")):
            obj = out_dir / f"{folder}-{src.stem}.o"
            subprocess.run([gcc, *CFLAGS, *CPUS[cpu], "-I", str(KERNEL_ROOT / "reference"), "-c", str(src),
                            "-o", str(obj)], check=True, capture_output=True)
            found |= undefined_symbols(subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True,
                                                      check=True).stdout)
    return found
