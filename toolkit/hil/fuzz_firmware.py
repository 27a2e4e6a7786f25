"""The firmware's command parser under a fuzzer (issue #14): runtime/dut.c fed by runtime/fuzz/fuzz_dut.c.

Two engines over the same harness: libFuzzer (clang -fsanitize=fuzzer,address,undefined; coverage-guided)
and, where clang or its fuzzer runtime is missing, fuzz_main.c (seeded random mutations of the seed corpus)
under gcc's ASan/UBSan. The model is firmware_stubs/testmodel with the stand-in frontend of runtime/fuzz,
so rload/rrun run too. tests/test_fuzz_firmware.py runs short seeded campaigns, bench/fuzz_firmware.py
long ones.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import EdgetkError
from toolkit.hil.build import firmware_root

ENGINES = ("libfuzzer", "sanitizers")
FLAGS = ("-std=c99", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-fno-sanitize-recover=all",
         "-fno-omit-frame-pointer")
ENV = {"ASAN_OPTIONS": "abort_on_error=1:detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
_STANDIN_X = bytes(range(16))
_STANDIN_RAW = bytes((7 * i) & 0xFF for i in range(64))


def _upload(cmd: str, data: bytes) -> bytes:
    return f"{cmd} {len(data)} {zlib.crc32(data):08x}%".encode() + data


def seeds() -> dict[str, bytes]:
    """The seed corpus: every command of the protocol, with valid uploads, and the link noise the host meets."""
    x, raw = _STANDIN_X, _STANDIN_RAW
    return {
        "mlperf": b"name%profile%timestamp%db load 16%db " + x.hex().encode() + b"%db print%infer 2 1%results%",
        "edgetk": b"info%mem%" + _upload("bload", x) + b"run 3 1%mem%",
        "raw": _upload("rload", raw) + b"rrun 2 1%run 1 0%results%",
        "errors": b"run 1 0%rrun 1 0%bload 15 0%rload 64 1%" + bytes(64) + b"infer 0 0%db zz%bogus%",
        "noise": b"\x00\x01name%\r\n%%run 10000 10000%x" + b"a" * 90 + b"%info%",
        "limits": b"infer 1 4294967295%run 10001 0%rrun 1 10001%bload 4294967296 ffffffff%",
    }


def standin_library(out: str | Path, *, frontend: bool = True) -> Path:
    """firmware_stubs/testmodel (FC 16 -> 4), with the stand-in frontend of runtime/fuzz when `frontend`:
    a library the firmware builds like a generated one (raw windows of 16 x 2 int16 samples)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = firmware_root()
    shutil.copy(root / "testmodel" / "edgetk_model.c", out)
    header = (root / "testmodel" / "edgetk_model.h").read_text()
    if frontend:
        for name in ("edgetk_frontend.h", "edgetk_frontend.c"):
            shutil.copy(root / "runtime" / "fuzz" / name, out)
        head, _, tail = header.rpartition("#endif")
        header = head + '#define EDGETK_HAS_FRONTEND 1\n#include "edgetk_frontend.h"\n\n#endif' + tail
    (out / "edgetk_model.h").write_text(header)
    return out


def standin_features(raw: bytes) -> bytes:
    """The stand-in frontend in Python: int16 LE pairs summed, divided by 512 toward zero, clamped to int8."""
    import numpy as np

    r = np.frombuffer(raw, "<i2").astype(np.int64).reshape(16, 2).sum(axis=1)
    q = np.clip(np.trunc(r / 512), -128, 127).astype(np.int8)
    return q.tobytes()


def compiler(engine: str) -> str:
    """The compiler an engine needs, or an EdgetkError that says how to install it."""
    if engine not in ENGINES:
        raise EdgetkError(f"unknown fuzz engine {engine!r}", fix=f"choose one of: {', '.join(ENGINES)}")
    cc = "clang" if engine == "libfuzzer" else "gcc"
    if shutil.which(cc) is None:
        raise EdgetkError(f"{cc} not found (needed for the {engine} firmware fuzzer)",
                          fix="apt-get install clang libclang-rt-dev" if cc == "clang" else "apt-get install gcc")
    return cc


def build(out: str | Path, *, engine: str = "libfuzzer", frontend: bool = True,
          defines: tuple[str, ...] = ()) -> Path:
    """Compile the harness (dut.c + crc32.c + fuzz_dut.c + the stand-in library) for an engine."""
    cc = compiler(engine)
    out = Path(out)
    lib = standin_library(out / "lib", frontend=frontend)
    rt = firmware_root() / "runtime"
    sources = [rt / "dut.c", rt / "crc32.c", rt / "fuzz" / "fuzz_dut.c", *sorted(lib.glob("*.c"))]
    if engine == "libfuzzer":
        san = ["-fsanitize=fuzzer,address,undefined"]
    else:
        san, sources = ["-fsanitize=address,undefined"], [*sources, rt / "fuzz" / "fuzz_main.c"]
    exe = out / f"fuzz_dut_{engine}"
    cmd = [cc, *FLAGS, *san, *(f"-D{d}" for d in defines), f"-I{rt}", f"-I{lib}", *map(str, sources), "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        fix = "apt-get install libclang-rt-dev (clang's fuzzer runtime)" if "fuzzer" in proc.stderr else \
            "the firmware runtime must compile warning-free (C99, -Wall -Wextra -Werror)"
        raise EdgetkError(f"building the {engine} firmware fuzzer failed: {proc.stderr[-1500:]}", fix=fix)
    return exe


def seed_corpus(out: str | Path) -> Path:
    """Write the seed inputs, one file each, into out (created)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (out / name).write_bytes(data)
    return out


@dataclass
class FuzzRun:
    """What one fuzzing run did."""

    engine: str
    seed: int
    inputs: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)   # saved failing inputs
    slowest_ms: float = 0.0
    slowest: str = ""
    returncode: int = 0
    log_tail: str = ""

    def summary(self) -> str:
        """One paragraph: inputs, rate, failures with their files, slowest input."""
        rate = self.inputs / self.seconds if self.seconds else 0.0
        lines = [f"firmware command parser ({self.engine}, seed {self.seed}): {self.inputs} inputs in "
                 f"{self.seconds:.1f} s ({rate:.0f}/s), {len(self.failures)} failures, slowest input "
                 f"{self.slowest_ms:.1f} ms {self.slowest}".rstrip()]
        lines += [f"  FAIL {p}" for p in self.failures[:20]]
        if self.failures or self.returncode:
            lines.append(self.log_tail[-3000:])
        return "\n".join(lines)


def run(exe: str | Path, corpus: str | Path, out: str | Path, *, seconds: float, seed: int = 1,
        engine: str = "libfuzzer") -> FuzzRun:
    """Fuzz for `seconds` from `corpus` (libFuzzer adds what it finds to it); failing inputs go to out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res, t0 = FuzzRun(engine=engine, seed=seed), time.monotonic()
    if engine == "libfuzzer":
        cmd = [str(exe), f"-max_total_time={max(int(seconds), 1)}", f"-seed={seed}", f"-artifact_prefix={out}/",
               "-print_final_stats=1", "-timeout=10", "-max_len=2048",
               # No RSS limit: CI read 2 GiB RSS after 1 s where this machine reads 144 MiB (likely transparent
               # huge pages set to "always" there, ASan shadow pages counted 2 MiB each); a single
               # allocation over 256 MiB is still an "oom" failure.
               "-rss_limit_mb=0", "-malloc_limit_mb=256", str(corpus)]
    else:
        cmd = [str(exe), f"-seed={seed}", f"-max_total_time={seconds}", f"-out={out}",
               *sorted(str(p) for p in Path(corpus).iterdir())]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, env={**os.environ, **ENV})
    res.seconds, res.returncode = time.monotonic() - t0, proc.returncode
    res.log_tail = (proc.stdout + proc.stderr)[-6000:]
    res.failures = sorted(str(p) for p in out.iterdir() if p.name.split("-")[0] in ("crash", "timeout", "oom", "leak"))
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr) or \
        re.search(r"fuzz_main: inputs (\d+)", proc.stdout)
    res.inputs = int(m.group(1)) if m else 0
    slow = re.search(r"slowest #(\d+) ([0-9.]+) ms", proc.stdout)
    if slow:
        res.slowest_ms, res.slowest = float(slow.group(2)), f"(#{slow.group(1)} of seed {seed})"
    if proc.returncode != 0 and not res.failures:
        res.failures.append(f"(exit {proc.returncode}, no input saved)")
    return res


def replay(exe: str | Path, files: list[Path], engine: str = "libfuzzer") -> tuple[int, float, str]:
    """Run each file once: (inputs, slowest ms, slowest file). A failure raises EdgetkError with the log."""
    slowest, which, done = 0.0, "", 0
    for i in range(0, len(files), 400):
        chunk = [str(p) for p in files[i:i + 400]]
        proc = subprocess.run([str(exe), *chunk], capture_output=True, text=True, timeout=600,
                              env={**os.environ, **ENV})
        if proc.returncode != 0:
            raise EdgetkError(f"replaying the corpus failed: {(proc.stdout + proc.stderr)[-2000:]}",
                              fix="the failing input is the last one named in the log")
        times = [(float(ms), path) for path, ms in re.findall(r"Executed (\S+) in (\d+) ms", proc.stderr)]
        m = re.search(r"slowest #(\d+) ([0-9.]+) ms", proc.stdout)
        if m:
            times.append((float(m.group(2)), chunk[int(m.group(1))]))
        for ms, path in times:
            if ms >= slowest:
                slowest, which = ms, path
        done += len(chunk)
    return done, slowest, which
