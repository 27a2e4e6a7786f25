"""Firmware builds: the portable runtime + a board port + a generated C library, one compiler call."""
from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_write_text
from toolkit.paths import repo_dir
from toolkit.progress import stage
from toolkit.targets import BuildSpec, TargetSpec
from toolkit.tools import require_tool

log = logging.getLogger(__name__)

WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
FLASH_SECTIONS = (".text", ".rodata", ".ARM.exidx", ".data", ".vectors")
RAM_SECTIONS = (".data", ".bss")


@dataclass(frozen=True)
class Firmware:
    """A built firmware image and its sizes."""

    target: str
    elf: Path
    bin: Path | None
    flash_bytes: int          # code + const data + .data initialisers
    static_ram_bytes: int     # .data + .bss (the generated arena lives in .bss)
    stack_bytes: int          # reserved stack (.stack)
    sections: dict[str, int]


def firmware_root() -> Path:
    """firmware_stubs/ in the repository."""
    return repo_dir("firmware_stubs")


def with_defines(spec: TargetSpec, defines: dict[str, str]) -> TargetSpec:
    """The target with extra preprocessor defines (e.g. the MLPerf model key); values are C tokens."""
    if not defines or spec.build is None:
        return spec
    kept = tuple((k, v) for k, v in spec.build.defines if k not in defines)
    return replace(spec, build=replace(spec.build, defines=kept + tuple(defines.items())))


def c_string(value: str) -> str:
    """A define value that is a C string literal; only [A-Za-z0-9_.-] pass (no quoting to get wrong)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", value):
        raise EdgetkError(f"{value!r} cannot be compiled into the firmware as a name",
                          fix="use 1-32 letters, digits, '_', '.' or '-' (e.g. kws01)")
    return f'"{value}"'


def compile_command(build: BuildSpec, lib_dir: Path, out: Path) -> list[str]:
    """The compiler argument list (no shell) for runtime + port + every .c under lib_dir."""
    root = firmware_root()
    lib_sources = sorted(str(p) for p in Path(lib_dir).rglob("*.c"))
    if not lib_sources:
        raise EdgetkError(f"no C sources under {lib_dir}", fix="run `edgetk codegen MODEL.tflite -o DIR` first")
    cmd = [build.cc, *build.cflags, *WARNINGS, f"-I{root / 'runtime'}"]
    cmd += [f"-I{root / inc}" for inc in build.includes]
    cmd += [f"-I{lib_dir}", f"-I{Path(lib_dir) / 'kernels'}"]
    cmd += [f"-D{k}={v}" for k, v in build.defines]
    cmd += sorted(str(p) for p in (root / "runtime").glob("*.c"))
    cmd += [str(root / s) for s in build.sources] + lib_sources
    if build.linker_script:
        script = root / build.linker_script
        cmd += [f"-L{script.parent}", f"-L{root / 'ports' / 'cortexm'}", f"-T{script}"]
    return cmd + list(build.ldflags) + ["-o", str(out)]


def parse_size_sysv(text: str) -> dict[str, int]:
    """Section sizes from `size -A` output (pure: takes the text)."""
    sections = {}
    for line in text.splitlines():
        m = re.match(r"^(\.\S+)\s+(\d+)\s+\d+\s*$", line.strip())
        if m:
            sections[m.group(1)] = int(m.group(2))
    return sections


def _run(cmd: list[str], what: str) -> str:
    require_tool(cmd[0], what)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise EdgetkError(f"{what} failed ({cmd[0]} exit {proc.returncode}):\n{proc.stderr[-3000:]}",
                          fix="see the compiler message above; the command is in build.log")
    return proc.stdout + proc.stderr


def build_firmware(spec: TargetSpec, lib_dir: str | Path, out_dir: str | Path) -> Firmware:
    """Compile the firmware for a target into out_dir; returns the image and its sizes."""
    if spec.build is None:
        raise EdgetkError(f"target {spec.name} has no [build] table", fix=f"add one to {spec.path}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    elf = out_dir / ("firmware.elf" if spec.build.linker_script else "firmware")
    cmd = compile_command(spec.build, Path(lib_dir).resolve(), elf)
    log.info("building %s firmware in %s", spec.name, out_dir)
    try:
        with stage(f"build {spec.name} firmware: {Path(cmd[0]).name}, {sum(a.endswith('.c') for a in cmd)} C files"):
            text = _run(cmd, f"build {spec.name} firmware")
    except EdgetkError as e:
        overflow = _OVERFLOW_RE.search(str(e))
        if overflow:
            raise _too_big(spec, overflow.group(1), f"overflowed by {int(overflow.group(2)):,} B at link time") from None
        raise
    atomic_write_text(out_dir / "build.log", " ".join(cmd) + "\n\n" + text)
    return check_fits(spec, _sized(spec, elf))


_OVERFLOW_RE = re.compile(r"region [`'\"]?(\w+)['\"]? overflowed by (\d+) bytes")


def _too_big(spec: TargetSpec, region: str, detail: str) -> EdgetkError:
    return EdgetkError(
        f"the model does not fit {spec.name}: {region} {detail} "
        f"(the board has {spec.flash_bytes:,} B flash, {spec.ram_bytes:,} B RAM)",
        fix=f"train a narrower model (`edgetk train RECIPE --fit-target {spec.name}` picks the widest that fits), "
            "or choose a target with more memory")


def check_fits(spec: TargetSpec, fw: Firmware) -> Firmware:
    """Refuse a firmware whose flash or RAM (static data + reserved stack) exceeds the target's."""
    if fw.flash_bytes > spec.flash_bytes:
        raise _too_big(spec, "flash", f"needs {fw.flash_bytes:,} B")
    ram = fw.static_ram_bytes + fw.stack_bytes
    if ram > spec.ram_bytes:
        raise _too_big(spec, "RAM", f"needs {ram:,} B (static {fw.static_ram_bytes:,} + stack {fw.stack_bytes:,})")
    return fw


def _sized(spec: TargetSpec, elf: Path) -> Firmware:
    tool = spec.build.size_tool if spec.build else ""
    if not tool:
        return Firmware(spec.name, elf, None, 0, 0, 0, {})
    sections = parse_size_sysv(_run([tool, "-A", str(elf)], "measure sizes"))
    binary = elf.with_suffix(".bin")
    _run([tool.replace("size", "objcopy"), "-O", "binary", str(elf), str(binary)], "make the .bin")
    return Firmware(
        target=spec.name, elf=elf, bin=binary,
        flash_bytes=sum(v for k, v in sections.items() if k in FLASH_SECTIONS),
        static_ram_bytes=sum(v for k, v in sections.items() if k in RAM_SECTIONS),
        stack_bytes=sections.get(".stack", 0), sections=sections)
