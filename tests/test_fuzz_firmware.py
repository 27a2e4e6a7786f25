"""The firmware's command parser under a fuzzer (issue #14): runtime/dut.c driven by runtime/fuzz/fuzz_dut.c, every
reply checked as the host reads it (printable lines, m-ready closes each reply, m-cmd + a valid m-sum on checked
replies), ASan and UBSan on. Short seeded runs; long run: bench/fuzz_firmware.py."""
from __future__ import annotations

import os

import pytest

from conftest import require_tool
from toolkit.errors import EdgetkError
from toolkit.hil import fuzz_firmware as FF


def _build(tmp_path, engine: str, **kw):
    require_tool("clang" if engine == "libfuzzer" else "gcc")
    try:
        return FF.build(tmp_path / engine, engine=engine, **kw)
    except EdgetkError as e:
        if "libclang-rt" not in (e.fix or ""):
            raise
        msg = f"clang has no fuzzer runtime here; fix: {e.fix}"
        if os.environ.get("EDGETK_REQUIRE_QEMU") == "1":
            pytest.fail(f"{msg} (EDGETK_REQUIRE_QEMU=1 turns this skip into a failure)")
        pytest.skip(msg)


def test_libfuzzer_short_seeded_run(tmp_path):
    exe = _build(tmp_path, "libfuzzer")
    run = FF.run(exe, FF.seed_corpus(tmp_path / "corpus"), tmp_path / "out", seconds=4, seed=1)
    assert run.returncode == 0 and not run.failures, run.summary()
    assert run.inputs > 3000, run.summary()


def test_sanitizer_build_random_inputs_and_the_checks_can_fail(tmp_path):
    """gcc's ASan/UBSan build with the seeded random driver (where libFuzzer is missing); the same harness with a
    line limit below the firmware's must stop at the first reply and keep that input."""
    exe = _build(tmp_path, "sanitizers")
    run = FF.run(exe, FF.seed_corpus(tmp_path / "corpus"), tmp_path / "out", seconds=1.5, seed=7, engine="sanitizers")
    assert run.returncode == 0 and not run.failures and run.inputs > 2000, run.summary()
    strict = _build(tmp_path / "strict", "sanitizers", defines=("LINE_LIMIT=10u",))
    bad = FF.run(strict, tmp_path / "corpus", tmp_path / "bad", seconds=1, seed=1, engine="sanitizers")
    assert bad.returncode != 0 and "protocol violation: a line longer" in bad.log_tail, bad.summary()
    assert len(bad.failures) == 1 and bad.failures[0].split("/")[-1].startswith("crash-1-")
