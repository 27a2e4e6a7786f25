"""`edgetk demo`: the whole spine for one task — train, quantize, export, generate C, build firmware,
profile it on the (emulated) board, and write the report."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from toolkit.errors import EdgetkError
from toolkit.output import emit
from toolkit.paths import repo_dir

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="train → quantize → export → firmware → profile → report, for one task")
    p.add_argument("--task", default="imu-motions", help="recipe name under models/ (default: imu-motions)")
    p.add_argument("--target", default="qemu-m4", help="target to profile on (default: qemu-m4)")
    p.add_argument("--samples", type=int, default=20, help="test samples sent to the device")
    p.add_argument("-o", "--out", type=Path, default=None, help="output folder (default: runs/demo-TASK)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override, e.g. train.epochs=5 (repeatable)")
    return p


def _step(n: int, title: str) -> float:
    print(f"\n[{n}/4] {title}", flush=True)
    return time.monotonic()


def _print_accuracy(bundle: Path) -> None:
    """Two lines: the task metric in fp32 and int8 with the model's size (manifest), and how the three int8
    runtimes agree (fidelity)."""
    m = json.loads((bundle / "manifest.json").read_text())
    f = json.loads((bundle / "fidelity.json").read_text())
    print(f"      {m['metric']}: fp32 {m['fp32_metric']:.4f} → int8 {m['int8_metric']:.4f}  "
          f"({m['params']:,} params, {m['macs']:,} MACs, TFLite-Micro arena {m['tflm_arena_bytes']:,} B)")
    same = lambda c: "bit-identical" if c["identical"] else f"max {c['max_lsb_diff']} LSB apart"  # noqa: E731
    print(f"      int8 outputs on {f['n_test']} test samples: ONNX Runtime vs TFLite {same(f['int8_onnx_vs_tflite'])}, "
          f"TFLite vs TFLite-Micro {same(f['litert_ref_vs_tflm'])}")


def run(args: argparse.Namespace) -> int:
    from toolkit.export import export_run
    from toolkit.hil import profile
    from toolkit.recipe import load_recipe
    from toolkit.train import train

    recipe_path = repo_dir("models") / f"{args.task}.toml"
    if not recipe_path.is_file():
        names = sorted(p.stem for p in repo_dir("models").glob("*.toml"))
        raise EdgetkError(f"no recipe for task {args.task!r}", fix=f"choose one of: {', '.join(names)}")
    out = args.out or Path("runs") / f"demo-{args.task}"
    recipe = load_recipe(recipe_path, args.overrides)

    t = _step(1, f"train {args.task} ({recipe_path})")
    run_dir = train(recipe, out / "run", resume=(out / "run" / "checkpoints" / "last.pt").is_file())
    print(f"      run: {run_dir}  ({time.monotonic() - t:.0f} s)")

    t = _step(2, "quantize int8 once, export ONNX / TFLite / C")
    bundle = export_run(run_dir, out / "bundle", formats=("onnx", "tflite", "c"))
    print(f"      bundle: {bundle}  ({time.monotonic() - t:.0f} s)")
    _print_accuracy(bundle)

    t = _step(3, f"build firmware and profile on {args.target}")
    result = profile(bundle, args.target, samples=args.samples, out_dir=out / "profile")
    print(f"      ({time.monotonic() - t:.0f} s)")

    _step(4, "report")
    if args.json:
        from toolkit.commands.profile import result_doc

        m = json.loads((bundle / "manifest.json").read_text())
        emit({"task": args.task, "target": args.target, "run_dir": str(run_dir), "bundle": str(bundle),
              "metric": m["metric"], "fp32_metric": m["fp32_metric"], "int8_metric": m["int8_metric"],
              "profile": result_doc(result)})
        return 0
    print(result.summary() if hasattr(result, "summary") else result)
    print(f"\nreport: {getattr(result, 'html_path', out / 'profile')}")
    return 0
