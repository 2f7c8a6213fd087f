"""The `omnireid` command line: the only place that parses arguments.

Each command lives in its own module of this package, which defines ``register(subparsers)`` and
``run(args) -> int``. ``main`` wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from omnireid import __version__

# Order here is the order shown in `omnireid --help`.
COMMAND_MODULES: list[str] = [
    "omnireid.cli.demo",
    "omnireid.cli.train",
    "omnireid.cli.eval",
    "omnireid.cli.nas",
    "omnireid.cli.reproduce",
    "omnireid.cli.extract",
    "omnireid.cli.search",
    "omnireid.cli.export",
    "omnireid.cli.bench",
    "omnireid.cli.models",
    "omnireid.cli.info",
    "omnireid.cli.data",
]


class CLIError(Exception):
    """An error the user can fix; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnireid",
        description="Person re-identification with OSNet and OSNet-AIN.",
    )
    parser.add_argument("--version", action="version", version=f"omnireid {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show progress logging from the library")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (CLIError, KeyError, FileNotFoundError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"omnireid {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
