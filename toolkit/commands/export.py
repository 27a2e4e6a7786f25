"""`edgetk export RUN_DIR`: quantize once, write ONNX fp32/int8, TFLite int8 (and C) into a bundle."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from toolkit.output import emit

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `export` and return its parser."""
    p = sub.add_parser("export", help="quantize a trained run to int8 once; write ONNX, TFLite (and C) + manifest")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder (edgetk train)")
    p.add_argument("--quantizer", choices=("nncf", "ort"), default="nncf",
                   help="post-training quantizer: NNCF ONNX backend (default) or onnxruntime quantize_static")
    p.add_argument("--calib", type=int, default=200, help="calibration samples from the training split (default 200)")
    p.add_argument("--qat", action="store_true", help="quantization-aware fine-tuning before quantizing")
    p.add_argument("--free-scales", action="store_true",
                   help="keep the quantizer's weight scales instead of dyadic ones (ONNX int8 and TFLite then round "
                        "some values 1 LSB apart; see toolkit/quant/dyadic.py)")
    p.add_argument("--formats", default="onnx,tflite", help="comma list of onnx, tflite, c (default onnx,tflite; onnx and tflite are always "
                        "written, the fidelity chain needs both; c adds the generated C library)")
    p.add_argument("-o", "--out", type=Path, default=None, help="bundle folder (default RUN_DIR/bundle)")
    return p


def run(args: argparse.Namespace) -> int:
    """Export the run and print the bundle path with its fidelity summary."""
    from toolkit.export import export_run

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    out = export_run(args.run_dir, args.out, quantizer=args.quantizer, calib=args.calib, qat=args.qat,
                     formats=formats, dyadic=not args.free_scales)
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    if args.json:
        emit({"bundle": str(out), "manifest": m,
              "fidelity": json.loads((out / "fidelity.json").read_text(encoding="utf-8"))})
        return 0
    print((out / "fidelity.md").read_text(encoding="utf-8"))
    sizes = ", ".join(f"{k} {v['bytes']:,} B" for k, v in m["files"].items() if k.startswith("model_"))
    print(f"bundle: {out}\n  {sizes}\n  params {m['params']:,}, MACs {m['macs']:,}, "
          f"TFLM arena {m['tflm_arena_bytes']:,} B, ops {m['ops']}")
    return 0
