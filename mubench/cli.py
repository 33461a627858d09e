"""`python -m mubench` / `mubench`: argparse subcommands, each in mubench/commands/<name>.py.

Every command module has `add_parser(subparsers)` and `run(args) -> int` and does no work of its
own beyond calling the library. `main` turns a MubenchError into one stderr line and exit code
2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import MubenchError

COMMANDS = ("run", "tune", "list", "train", "report", "paper", "fetch", "analyze")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mubench",
        description="Benchmark machine-unlearning methods (forget vectors and model-based baselines) "
        "for image classification.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"mubench.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"mubench.commands.{name}":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # what was typed, for commands that record their own command line
    try:
        return int(args.func(args) or 0)
    except MubenchError as err:
        if args.debug:
            raise
        message = " ".join(str(err).split())  # one line, even when a wrapped error holds newlines
        print(f"mubench: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mubench: interrupted; finished jobs are kept, run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
