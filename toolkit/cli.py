"""The `edgetk` command line: one module per command under toolkit/commands, registered here."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from toolkit import __version__
from toolkit.errors import EdgetkError

# One line per command module; each module defines add_parser(subparsers) and run(args) -> int.
COMMANDS = (
    "train", "data", "info", "export", "import_", "inspect", "codegen", "merge",
    "build", "flash", "profile", "validate", "targets", "ports", "doctor", "demo",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command module that is present."""
    parser = argparse.ArgumentParser(prog="edgetk", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edgetk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"toolkit.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"toolkit.commands.{name}":
                continue
            raise
        module.add_parser(sub).set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except EdgetkError as e:
        print(f"edgetk {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgetk {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
