"""Million-parameter specialist vs the small model on the same data, same run, then its full pipeline.

image-digits (scikit-learn 8x8 digits, 1,437 train / 360 test): the zoo's ResNet at width 1.0 (78k params,
models/image-digits.toml) vs width 4.0 (1.23M params, models/image-digits-1m.toml), same recipe otherwise
(30 epochs, AdamW), --seeds seeds each: fp32 test top-1 mean +- std. Then the width-4.0 run of the first seed
goes through `edgetk export` (int8 ONNX/TFLite) and `edgetk validate --target nucleo-h743zi --allow-fallback`
(generated C on qemu-m7, its emulator: fit against the board's file, instructions, bit-exact vs TFLite-Micro).
Usage: .venv/bin/python bench/million.py [--seeds 3] [--widths 1.0,4.0] [--samples 20]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.cli import main as edgetk  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "models"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--widths", default="1.0,4.0")
    ap.add_argument("--samples", default="20", help="validate --samples")
    args = ap.parse_args()
    widths = [float(w) for w in args.widths.split(",")]
    res: dict[float, list[tuple[float, int, int, float]]] = {w: [] for w in widths}
    with tempfile.TemporaryDirectory() as tmp:
        first = None
        for seed in range(args.seeds):
            for w in widths:
                out = Path(tmp) / f"w{w}-s{seed}"
                t0 = time.perf_counter()
                rc = edgetk(["train", str(MODELS / "image-digits-1m.toml"), "-o", str(out), "-q",
                             "--set", f"model.width={w}", "--set", f"train.seed={seed}"])
                m = json.loads((out / "metrics.json").read_text())
                res[w].append((100 * m["value"], m["params"], m["macs"], time.perf_counter() - t0))
                print(f"seed {seed} width {w}: rc {rc}, test top-1 {100 * m['value']:.2f}%, {m['params']:,} params, "
                      f"{m['macs']:,} MACs, {res[w][-1][3]:.0f} s", flush=True)
                if seed == 0 and w == max(widths):
                    first = out
        for w in widths:
            acc = [r[0] for r in res[w]]
            print(f"width {w}: {res[w][0][1]:,} params, {res[w][0][2]:,} MACs: test top-1 "
                  f"{statistics.mean(acc):.2f} +- {statistics.pstdev(acc):.2f} % over {len(acc)} seeds {acc}")
        bundle = Path(tmp) / "bundle"
        t0 = time.perf_counter()
        edgetk(["export", str(first), "-o", str(bundle), "-q"])
        print(f"export of {first.name}: {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        rc = edgetk(["validate", str(bundle), "--target", "nucleo-h743zi", "--allow-fallback", "--samples",
                     args.samples, "-o", str(Path(tmp) / "v")])
        rep = json.loads((Path(tmp) / "v" / "report.json").read_text())
        print(f"validate rc {rc} ({time.perf_counter() - t0:.0f} s): ran on {rep['ran_on']}; capacity "
              f"{json.dumps(rep['capacity'])}; instructions per inference {rep['instructions']['per_inference']:,}; "
              f"memory {json.dumps(rep['memory'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
