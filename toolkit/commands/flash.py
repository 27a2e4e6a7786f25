"""`edgetk flash BUNDLE|MODEL.tflite --target T [--port P]`: build, flash, and check the board answers with this model."""
from __future__ import annotations

import argparse

from toolkit.commands.profile import add_model_args
from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk flash`."""
    p = sub.add_parser("flash", help="build and flash the firmware of a bundle or .tflite, then check the model hash")
    add_model_args(p)
    p.add_argument("--target", required=True, help="target name (edgetk targets)")
    p.add_argument("--port", default=None, help="the board's serial port or pyserial URL (default: by USB id; "
                   "refused for QEMU and host-sim, which open their own link)")
    return p


def run(args: argparse.Namespace) -> int:
    """Flash, boot, and verify the device reports the bundle's model sha256 and MLPerf model key."""
    from toolkit.commands.build import build_bundle
    from toolkit.errors import EdgetkError
    from toolkit.hil.runner import Session, check_model, mlperf_answer

    adapter, fw, bundle, key = build_bundle(args, None, port=args.port)
    reason = adapter.unavailable()
    if reason:
        raise EdgetkError(f"cannot flash {args.target}: {reason}", fix="attach the board or pass --port")
    adapter.flash(fw)
    with Session(adapter, fw.elf.parent) as s:
        info = check_model(s.dut, bundle)
        answered = mlperf_answer(s.dut)
    if args.json:
        emit({"target": args.target, "firmware": str(fw.elf), "board": info.board, "sha256": info.sha256,
              "mlperf_key": answered, "mlperf_key_source": key.source})
        return 0
    print(f"flashed {fw.elf} to {args.target}: board {info.board!r} runs model {info.sha256[:16]}…, "
          f"answers MLPerf model key m-model-[{answered}] ({key.source})")
    return 0
