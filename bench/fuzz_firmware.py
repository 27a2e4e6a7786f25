"""Fuzz the firmware's command parser (issue #14): runtime/dut.c with the stand-in model and frontend, fed by
runtime/fuzz/fuzz_dut.c (the fuzz input is the byte stream from the host; every reply is checked as the host reads
it), under libFuzzer (clang -fsanitize=fuzzer,address,undefined) and under gcc's ASan/UBSan with the seeded random
driver, firmware built with and without a frontend. Prints inputs tried, failures (inputs saved under --out) and the
slowest input, beside the baseline: the seed corpus replayed through the same binaries.

    python bench/fuzz_firmware.py [--seconds 60] [--seed 1] [--engines libfuzzer,sanitizers]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.errors import EdgetkError  # noqa: E402
from toolkit.hil import fuzz_firmware as FF  # noqa: E402
from toolkit.paths import REPO_ROOT  # noqa: E402


def main() -> int:
    """Each engine and build in turn for --seconds; exit 1 on any failure."""
    p = argparse.ArgumentParser(description="fuzz campaign: the firmware command parser")
    p.add_argument("--seconds", type=float, default=60.0, help="per engine and build (4 runs)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--engines", default="libfuzzer,sanitizers")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out" / "fuzz-firmware")
    a = p.parse_args()
    failed, total = False, 0
    for engine in a.engines.split(","):
        for frontend in (True, False):
            work = a.out / f"{engine}-{'frontend' if frontend else 'plain'}"
            shutil.rmtree(work, ignore_errors=True)
            try:
                exe = FF.build(work / "build", engine=engine, frontend=frontend)
            except EdgetkError as e:
                print(f"{engine}: not run: {e}\n  fix: {e.fix}")
                continue
            seeds = sorted(FF.seed_corpus(work / "seeds").iterdir())
            n, ms, _ = FF.replay(exe, seeds, engine)
            print(f"baseline ({engine}, {'with' if frontend else 'without'} frontend): {n} seed inputs replayed, "
                  f"0 failures, slowest {ms:.2f} ms")
            corpus = FF.seed_corpus(work / "corpus")
            run = FF.run(exe, corpus, work / "failures", seconds=a.seconds, seed=a.seed, engine=engine)
            if engine == "libfuzzer" and not run.failures:
                files = sorted(corpus.iterdir())
                _, run.slowest_ms, run.slowest = FF.replay(exe, files, engine)
                print(f"  corpus grown to {len(files)} inputs")
            print(run.summary())
            failed |= bool(run.failures) or run.returncode != 0
            total += run.inputs
    print(f"\ninputs tried in all: {total:,}; {'FAILURES (see above)' if failed else '0 failures'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
