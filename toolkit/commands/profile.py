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


def add_check_args(p: argparse.ArgumentParser, *, target_required: bool = True) -> None:
    """Measurement and limit options shared by profile and validate."""
    p.add_argument("--target", required=target_required,
                   help="target name (edgetk targets)" + ("" if target_required else
                                                         "; with --lab, default: the place's board"))
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
    add_check_args(p, target_required=False)
    add_lab_args(p)
    p.add_argument("more", nargs="*", type=Path, metavar="MORE", help="more bundles (with --lab and --cluster)")
    p.add_argument("--cluster", default=None, metavar="auto|ADDRESS|local",
                   help="with --lab: every bundle on every target of the matching places, one Ray actor per place "
                        "(auto: the cluster on this machine, ADDRESS: its head, local: a Ray started here); "
                        "results stream into OUT/results.jsonl, a re-run with the same -o skips the jobs done")
    return p


def add_lab_args(p: argparse.ArgumentParser) -> None:
    """--lab PLACE|TAG=VALUE and its lab file and wait (toolkit.hil.lab)."""
    p.add_argument("--lab", default=None, metavar="PLACE|TAG=VALUE",
                   help="reserve a free place of a labgrid lab (a place name or a tag such as board=nucleo-l4r5zi), "
                        "profile its board through RFC 2217, release it (also on errors and Ctrl-C)")
    p.add_argument("--lab-file", type=Path, default=Path("hil/lab.toml"), metavar="LAB.toml",
                   help="the lab: [lab] coordinator (LG_COORDINATOR overrides it), wait_s; [places.NAME] target, "
                        "tags, url_options (default hil/lab.toml)")
    p.add_argument("--lab-wait", type=float, default=None, metavar="S",
                   help="how long to wait for a busy place before giving up (default [lab] wait_s, else 600)")


def measure(args: argparse.Namespace, *, allow_fallback: bool, need_outputs: bool) -> Any:
    """Run the profile the arguments describe; returns the ProfileResult (reports written). With --lab: on a
    lab place held for the run (report["lab"] says which, when, and after the release when it was let go)."""
    from toolkit.errors import EdgetkError

    if args.max_lsb < 0 or args.max_lsb > 255:
        raise EdgetkError(f"--max-lsb {args.max_lsb}: int8 outputs differ by 0..255", fix="e.g. --max-lsb 0")
    if not getattr(args, "lab", None):
        if not args.target:
            raise EdgetkError("no target given", fix="pass --target T (edgetk targets), or --lab PLACE|TAG=VALUE")
        return _measure(args, args.target, args.port, allow_fallback, need_outputs)
    from toolkit.hil.lab import lab_target, lease, load_lab

    if args.port:
        raise EdgetkError("--port and --lab both name the board's link", fix="give one of them")
    lab = load_lab(args.lab_file)
    target = lab_target(args.lab, lab, args.target)
    with lease(args.lab, lab, args.lab_wait) as held:
        result = _measure(args, target, held.url, allow_fallback, need_outputs, lab=held.to_dict())
    result.report["lab"] = held.to_dict()
    return result


def _measure(args: argparse.Namespace, target: str, port: str | None, allow_fallback: bool, need_outputs: bool,
             lab: dict[str, Any] | None = None) -> Any:
    from toolkit.hil import profile
    from toolkit.hil.checks import Limits
    from toolkit.hil.source import ModelSource

    src = ModelSource(args.bundle, inputs=args.inputs, samples=args.samples)
    limits = Limits(max_lsb=args.max_lsb, max_drop=args.max_drop, allow_fallback=allow_fallback,
                    need_outputs=need_outputs)
    return profile(src, target, port=port, samples=args.samples, out_dir=args.out, limits=limits,
                   mlperf_key=args.mlperf_key, optimize=args.optimize, layers=None if args.layers else False, lab=lab)


def result_doc(result: Any) -> dict[str, Any]:
    """The --json document of a profile: verdict, checks, the files written and the whole report."""
    bad = result.failed
    return {"verdict": "fail" if bad else "pass", "exit_code": 1 if bad else 0,
            "checks": [c.to_dict() for c in result.checks], "files": {k: str(v) for k, v in result.files.items()},
            "report": result.report}


def run(args: argparse.Namespace) -> int:
    """Profile, print the summary (figures, sources, checks) and where the reports are."""
    if getattr(args, "cluster", None) or getattr(args, "more", None):
        return _run_lab_jobs(args)
    result = measure(args, allow_fallback=True, need_outputs=False)
    if args.json:
        emit(result_doc(result))
    else:
        print(result.summary())
        if "lab" in result.report:
            lab = result.report["lab"]
            print(f"lab place {lab['place']} ({lab['url']}, coordinator {lab['coordinator']}): held after "
                  f"{lab['waited_s']:.1f} s, released")
        print(f"report: {result.html_path}")
    return 1 if result.failed else 0


def _run_lab_jobs(args: argparse.Namespace) -> int:
    """`profile B1 B2 ... --lab TAG=VALUE --cluster ...` (toolkit.hil.lab_jobs): one line per job."""
    from toolkit.errors import EdgetkError
    from toolkit.hil.lab import load_lab
    from toolkit.hil.lab_jobs import ProfileOptions, run_lab_jobs

    if not args.lab or not args.cluster or args.out is None:
        raise EdgetkError("several bundles are profiled over a lab: --lab, --cluster and -o are all needed",
                          fix="e.g. edgetk profile B1 B2 --lab board=T --cluster local -o lab-run")
    if args.port or args.inputs:
        raise EdgetkError("--port/--inputs do not apply to lab jobs", fix="the places give the ports; use bundles")
    options = ProfileOptions(args.samples, args.max_lsb, args.max_drop, args.optimize, args.mlperf_key, args.layers)
    done = run_lab_jobs([args.bundle, *args.more], args.lab, load_lab(args.lab_file), args.out, args.cluster,
                        target=args.target, wait_s=args.lab_wait, options=options)
    if args.json:
        emit(done)
    else:
        for r in done["rows"]:
            print(f"{Path(r['bundle']).name} on {r['place']} ({r['target']}): "
                  + (f"error: {r['error']}" if r["error"] else f"{r['verdict']}, golden max |diff| "
                     f"{r['max_lsb_diff_golden']}, {r['latency_ms']} ms, report {r['report']}"))
        print(f"{done['jobs']} job(s) run, {done['skipped']} already done, places {', '.join(done['places'])}: "
              f"{done['results']}")
    bad = [r for r in done["rows"] if not r["ok"]] or done["not_run"]
    return 1 if bad else 0
