"""`edgetk profile BUNDLE|MODEL.tflite --target T`: measure latency, memory and on-device fidelity; write
reports with the same checks `edgetk validate` gates on.

Exit status: 0 when every check passes or only warns (a fallback to a stand-in target is reported
loudly, but `edgetk validate` is the gate for it); 1 when the device's outputs differ from the reference
by more than --max-lsb (default 0: not bit-exact), accuracy drops by more than --max-drop, or the
device failed during the run; 2 for usage or input errors.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from toolkit.output import emit


def samples_arg(text: str) -> int | None:
    """--samples N (N >= 1) or 'all' (None)."""
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a count of at least 1, or 'all'")
    return n


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The model argument and the options that turn a bare .tflite into a bundle (profile, validate, build, flash)."""
    p.add_argument("bundle", type=Path, metavar="BUNDLE|MODEL.tflite",
                   help="bundle folder (edgetk export / import) or an int8 .tflite (wrapped into a bundle under the cache: $EDGETK_CACHE, $XDG_CACHE_HOME/edgetk or ~/.cache/edgetk)")
    p.add_argument("--inputs", type=Path, default=None, metavar="FILE.npy|.npz",
                   help="test inputs for a .tflite (int8, or float quantized with the model's input scale; "
                        ".npz may hold labels as y); default: random int8 inputs, labelled as such in the reports")
    p.add_argument("--mlperf-key", default=None, metavar="KEY",
                   help="the MLPerf Tiny model key the firmware answers to profile%% (kws01, vww01, ic01, ad01, "
                        "sww01); default: found from the model's sha256, else 'edgetk'")
    add_optimize_arg(p)


def add_check_args(p: argparse.ArgumentParser) -> None:
    """Measurement and limit options shared by profile and validate."""
    p.add_argument("--target", required=True, help="target name (edgetk targets)")
    p.add_argument("--port", default=None, help="a board's serial port or pyserial URL (socket://, /dev/ttyACM0, ...); "
                   "refused for targets that open their own link (QEMU, host-sim, linux-local)")
    p.add_argument("--samples", type=samples_arg, default=20, metavar="N|all",
                   help="test inputs sent to the device (default 20; 'all' = the whole test set)")
    p.add_argument("--max-lsb", type=int, default=0, metavar="N",
                   help="largest allowed |device - reference| of any int8 output value (default 0: bit-exact)")
    p.add_argument("--max-drop", type=float, default=0.0, metavar="F",
                   help="largest allowed accuracy drop, device vs reference on the same labelled samples, as a "
                        "fraction (top-1 or ROC AUC; 0.01 = one point; default 0)")
    p.add_argument("-o", "--out", type=Path, default=None, help="report folder (default BUNDLE/profile-<target>)")
    p.add_argument("--no-layers", dest="layers", action="store_false",
                   help="skip the per-layer run on QEMU targets (a second cross-compile and emulator run; also "
                        "EDGETK_PROFILE_LAYERS=0)")


def add_optimize_arg(p: argparse.ArgumentParser) -> None:
    """--optimize size|speed for commands that generate the firmware's C (profile, validate, build, flash)."""
    p.add_argument("--optimize", choices=("size", "speed"), default="size",
                   help="generated C for the target's kernel set: size keeps int8 weights (default); speed stores "
                        "the weights of the SIMD conv/FC kernels as int16 where the target's flash allows")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk profile`."""
    p = sub.add_parser("profile", help="profile a bundle or .tflite on a board, QEMU, the host simulator or this machine",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_check_args(p)
    return p


def measure(args: argparse.Namespace, *, allow_fallback: bool, need_outputs: bool) -> Any:
    """Run the profile the arguments describe; returns the ProfileResult (reports written)."""
    from toolkit.errors import EdgetkError
    from toolkit.hil import profile
    from toolkit.hil.checks import Limits
    from toolkit.hil.source import ModelSource

    if args.max_lsb < 0 or args.max_lsb > 255:
        raise EdgetkError(f"--max-lsb {args.max_lsb}: int8 outputs differ by 0..255", fix="e.g. --max-lsb 0")
    src = ModelSource(args.bundle, inputs=args.inputs, samples=args.samples)
    limits = Limits(max_lsb=args.max_lsb, max_drop=args.max_drop, allow_fallback=allow_fallback,
                    need_outputs=need_outputs)
    return profile(src, args.target, port=args.port, samples=args.samples, out_dir=args.out, limits=limits,
                   mlperf_key=args.mlperf_key, optimize=args.optimize, layers=None if args.layers else False)


def result_doc(result: Any) -> dict[str, Any]:
    """The --json document of a profile: verdict, checks, the files written and the whole report."""
    bad = result.failed
    return {"verdict": "fail" if bad else "pass", "exit_code": 1 if bad else 0,
            "checks": [c.to_dict() for c in result.checks], "files": {k: str(v) for k, v in result.files.items()},
            "report": result.report}


def run(args: argparse.Namespace) -> int:
    """Profile, print the summary (figures, sources, checks) and where the reports are."""
    result = measure(args, allow_fallback=True, need_outputs=False)
    if args.json:
        emit(result_doc(result))
    else:
        print(result.summary())
        print(f"report: {result.html_path}")
    return 1 if result.failed else 0
