"""Bare-metal programs on an emulated Cortex-M4 (QEMU mps2-an386): build, run, count instructions.

A program is C sources defining `int etb_main(void)` (harness/etb_harness.h); it writes to the host
through semihosting and exits QEMU when done. The instructions between each edgetk_mark_start() /
edgetk_mark_stop() pair are counted exactly by the project's TCG plugin (firmware_stubs/qemu-plugin):
figures are "instructions (QEMU)", not cycles.
"""
from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from toolkit.errors import EdgetkError
from toolkit.paths import repo_dir
from toolkit.tools import require_tool

log = logging.getLogger(__name__)

HARNESS = Path(__file__).resolve().parent / "harness"
M4_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
M7_FLAGS = ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16")       # mps2-an500, an500.ld
M3_FLAGS = ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft")                          # mps2-an385, an385.ld
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections")


@dataclass(frozen=True)
class M4Run:
    """What a program printed and the instruction count of each marked region, in order."""

    stdout: str
    counts: list[int]
    elf: Path
    classes: tuple[dict[str, int], ...] = ()  # per marked region with classes=True (toolkit.hil.cycles)

    def lines(self, tag: str) -> list[str]:
        """The payloads of the lines starting with `tag `."""
        return [ln[len(tag) + 1:] for ln in self.stdout.splitlines() if ln.startswith(tag + " ")]


def build_m4(sources: Iterable[str | os.PathLike], include_dirs: Iterable[str | os.PathLike], out_dir: str |
             os.PathLike, *, name: str = "program", extra_flags: tuple[str, ...] = (),
             cpu_flags: tuple[str, ...] = M4_FLAGS, linker_script: str = "an386.ld") -> Path:
    """An mps2-an386 ELF of the harness + `sources` (startup and linker script from firmware_stubs).

    Other mps2 boards: `cpu_flags` (e.g. M3_FLAGS, M7_FLAGS) and `linker_script` under ports/qemu-mps2/."""
    gcc = require_tool("arm-none-eabi-gcc", "build the Cortex-M4 program")
    fw = repo_dir("firmware_stubs") / "ports"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    elf = out / f"{name}.elf"
    cmd = [gcc, *CFLAGS, *cpu_flags, *extra_flags, f"-I{HARNESS}", *(f"-I{d}" for d in include_dirs), str(fw / "cortexm" / "startup.c"),
           str(HARNESS / "etb_harness.c"), *map(str, sources), "-nostartfiles", "-Wl,--gc-sections",
           f"-L{fw / 'cortexm'}", "-T", str(fw / "qemu-mps2" / linker_script), "-lm", "-lc", "-lgcc", "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise EdgetkError(f"building {name} for Cortex-M4 failed:\n{proc.stderr[-4000:]}",
                          fix="report this as an edgetk bug")
    return elf


def insn_plugin() -> Path:
    """The instruction-count TCG plugin, built for this machine (cached by content)."""
    from toolkit.native.build import build_shared

    return build_shared([repo_dir("firmware_stubs") / "qemu-plugin" / "insn_count.c"], name="qemu_insn_count",
                        extra_flags=("-D_DEFAULT_SOURCE",))


def parse_classes(text: str) -> tuple[dict[str, int], ...]:
    """The plugin's class lines ("insns=N bytes=N ..." per marked region) as dicts (pure: text in)."""
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append({k: int(v) for k, v in (kv.split("=", 1) for kv in line.split())})
    return tuple(out)


def _markers(elf: Path) -> tuple[int, int]:
    nm = require_tool("arm-none-eabi-nm", "find the program's markers")
    out = subprocess.run([nm, str(elf)], capture_output=True, text=True, timeout=60).stdout
    syms = {p[2]: int(p[0], 16) for p in (ln.split() for ln in out.splitlines()) if len(p) == 3}
    return syms["edgetk_mark_start"], syms["edgetk_mark_stop"]


def run_m4(elf: str | os.PathLike, *, timeout: float = 300.0, machine: str = "mps2-an386",
           classes: bool = False) -> M4Run:
    """Run an ELF built by build_m4 on qemu-system-arm mps2-an386 (or `machine`) with the instruction counter;
    `classes`: also the plugin's instruction classes per marked region (slower: a callback per block and load)."""
    qemu = require_tool("qemu-system-arm", "run the Cortex-M4 program")
    elf = Path(elf)
    counts_file = elf.with_suffix(".insn.txt")
    out_file = elf.with_suffix(".out.txt")
    classes_file = elf.with_suffix(".classes.txt")
    counts_file.write_text("")
    out_file.write_text("")
    classes_file.write_text("")
    start, stop = _markers(elf)
    extra = f",classes={classes_file}" if classes else ""
    cmd = [qemu, "-machine", machine, "-display", "none", "-monitor", "none", "-serial", "null",
           "-chardev", f"file,id=semi,path={out_file}", "-semihosting-config", "enable=on,target=native,chardev=semi",
           "-kernel", str(elf),
           "-plugin", f"{insn_plugin()},start={start:#x},stop={stop:#x},outfile={counts_file}{extra}", "-d", "plugin"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise EdgetkError(f"{elf.name} did not finish on QEMU within {timeout:.0f} s",
                          fix="the program must call no blocking I/O and return from etb_main") from None
    if proc.returncode != 0:
        raise EdgetkError(f"{elf.name} exited with {proc.returncode} on QEMU:\n{(out_file.read_text() + proc.stderr)[-2000:]}",
                          fix="see the program's output above")
    return M4Run(out_file.read_text(), [int(v) for v in counts_file.read_text().split()], elf,
                 parse_classes(classes_file.read_text()) if classes else ())
