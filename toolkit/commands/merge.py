"""`edgetk merge RUN_DIR [-o OUT]`: fold LoRA/BitFit/probe/top fine-tuning into the base weights."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("merge", help="fold a fine-tuned run's LoRA/BitFit weights into a plain run folder")
    p.add_argument("run_dir", type=Path, help="run folder of a [finetune] recipe (holds peft.safetensors)")
    p.add_argument("-o", "--out", type=Path, default=None, help="merged run folder (default: RUN_DIR-merged)")
    return p


def run(args: argparse.Namespace) -> int:
    from toolkit.specialize.merge import describe, merge_run

    report = merge_run(args.run_dir, args.out)
    if args.json:
        emit(dataclasses.asdict(report))
    else:
        print(describe(report))
    return 0
