"""The `edgetk` command line: one module per command under toolkit/commands, registered here."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

from toolkit import __version__
from toolkit.errors import EdgetkError

# One line per command module; each module defines add_parser(subparsers) and run(args) -> int.
COMMANDS = (
    "train", "data", "info", "export", "import_", "inspect", "codegen", "merge",
    "build", "flash", "profile", "validate", "history", "compare", "targets", "ports", "doctor", "demo",
    "distill_data",
)

DESCRIPTION = """\
edgetk trains small models for sensors (motion, audio keywords, ECG, images), quantizes them to int8 once,
exports ONNX / TFLite / C, and measures them on a microcontroller: a real board, QEMU, or a host simulator.

The main flow:
  edgetk train models/imu-motions.toml -o runs/imu     train a task recipe into a run folder
  edgetk export runs/imu -o imu-bundle                 quantize once; write ONNX, TFLite, C + manifest
  edgetk profile imu-bundle --target qemu-m4           latency, memory and outputs on the target, as reports
  edgetk validate imu-bundle --target nucleo-l4r5zi    the same as a pass/fail gate (CI)
  edgetk demo                                          all of the above for one task, start to finish

Models made elsewhere enter with `edgetk import MODEL.onnx|.tflite`; a bare int8 .tflite is accepted by
profile, validate, build and flash. `edgetk doctor` says what this machine can run; `edgetk targets` lists
boards and emulators (add your own with --targets DIR, $EDGETK_TARGETS or ./targets)."""

EPILOG = """\
options accepted before or after the command:
  -v/--verbose, -q/--quiet, --json (one JSON document on stdout, human text on stderr; `train --json` streams
  JSON lines, one per epoch, then a final one), --targets DIR (a folder of your own target files; repeatable)

exit status:
  0    ok
  1    a check failed (profile/validate: outputs, accuracy or the device out of limits)
  2    usage or input error (bad arguments, a missing or invalid file, a model that does not fit)
  130  interrupted (Ctrl-C)
  141  stdout was closed early (e.g. piped into head): output stopped without an error

environment: EDGETK_CACHE (builds and caches; default $XDG_CACHE_HOME/edgetk or ~/.cache/edgetk),
EDGETK_TARGETS (target folders, separated by ':'), EDGETK_SHARED (the shared data folder)"""

# Commands whose --json output is a stream of JSON lines on stdout (written by the command itself).
JSON_LINES = ("train",)


class _Parser(argparse.ArgumentParser):
    """argparse, plus a JSON error document on stdout for a usage error under --json (exit 2 as before)."""

    json_requested = False

    def error(self, message: str) -> None:  # type: ignore[override]
        if _Parser.json_requested:
            from toolkit.output import emit

            emit({"command": self.prog.partition(" ")[2] or None, "exit_code": 2, "error": message, "fix": f"see `{self.prog} --help`"})
        super().error(message)


def _common_options(p: argparse.ArgumentParser, *, sub: bool) -> None:
    """-v/-q/--json/--targets: on the top-level parser, and again on every command (so they go anywhere)."""
    quiet = {"default": argparse.SUPPRESS} if sub else {"default": False}
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging", **quiet)
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only", **quiet)
    p.add_argument("--targets", dest="targets_dirs" + ("_sub" if sub else ""), action="append", metavar="DIR",
                   default=[], help="a folder of your own target files (<name>.toml), searched before the shipped ones")
    if not sub:
        p.add_argument("--json", dest="json_global", action="store_true",
                       help="one JSON document on stdout (human text on stderr)")
    elif "--json" not in p._option_string_actions:
        p.add_argument("--json", action="store_true", help="one JSON document on stdout (human text on stderr)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command module that is present."""
    parser = _Parser(prog="edgetk", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"edgetk {__version__}")
    _common_options(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"toolkit.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"toolkit.commands.{name}":
                continue
            raise
        p = module.add_parser(sub)
        _common_options(p, sub=True)
        p.set_defaults(_run=module.run, _json_lines=name in JSON_LINES)
    return parser


def _error_doc(command: str, e: BaseException, code: int) -> dict:
    if isinstance(e, EdgetkError):
        message = str(e).split("\n  fix: ")[0]
        return {"command": command, "exit_code": code, "error": message, "fix": e.fix}
    return {"command": command, "exit_code": code, "error": "interrupted"}


def _run(args: argparse.Namespace) -> int:
    """Run the command; EdgetkError is one message (and one JSON document under --json), exit 2."""
    from toolkit.output import emit, emitted, json_stdout

    with json_stdout(args.json and not args._json_lines):
        try:
            code = int(args._run(args) or 0)
        except EdgetkError as e:
            print(f"edgetk {args.command}: error: {e}", file=sys.stderr)
            if args.json:
                emit(_error_doc(args.command, e, 2))
            return 2
        if args.json and not emitted():
            emit({"command": args.command, "exit_code": code})
        return code


def _stdout_closed() -> int:
    """The reader of stdout went away (`| head`): stop quietly, and keep the interpreter's final flush quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    command = "edgetk"
    saved_env = os.environ.get("EDGETK_TARGETS_OPTION")
    try:
        _Parser.json_requested = "--json" in (sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        command = f"edgetk {args.command}"
        args.json = bool(getattr(args, "json", False) or args.json_global)
        dirs = [*args.targets_dirs, *getattr(args, "targets_dirs_sub", [])]
        if dirs:
            os.environ["EDGETK_TARGETS_OPTION"] = os.pathsep.join(dirs)
        level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        code = _run(args)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at interpreter exit
        return code
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _stdout_closed()
    finally:
        if saved_env is None:
            os.environ.pop("EDGETK_TARGETS_OPTION", None)
        else:
            os.environ["EDGETK_TARGETS_OPTION"] = saved_env


if __name__ == "__main__":
    sys.exit(main())
