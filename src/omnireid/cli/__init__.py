"""The `omnireid` command line: the only place that parses arguments.

Each command lives in its own module of this package, which defines ``register(subparsers)`` and
``run(args) -> int``. ``main`` wires them together.

Errors: the library's own errors (:mod:`omnireid.errors`) and failed writes to a full or
read-only disk end the command with one line, ``omnireid COMMAND: error: MESSAGE``, and a
non-zero status; Ctrl-C ends it with status 130 and a line saying what was kept, and SIGTERM
(what job schedulers and ``docker stop`` send) the same way with status 143. Any other exception
is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from omnireid import __version__
from omnireid.errors import OmnireidError, UsageError, clean_message
from omnireid.files import is_write_failure, output_error

# Order here is the order shown in `omnireid --help`.
COMMAND_MODULES: list[str] = [
    "omnireid.cli.demo",
    "omnireid.cli.train",
    "omnireid.cli.eval",
    "omnireid.cli.nas",
    "omnireid.cli.reproduce",
    "omnireid.cli.extract",
    "omnireid.cli.search",
    "omnireid.cli.gallery",
    "omnireid.cli.calibrate",
    "omnireid.cli.export",
    "omnireid.cli.bench",
    "omnireid.cli.models",
    "omnireid.cli.info",
    "omnireid.cli.data",
    "omnireid.cli.recipes",
]


#: A bad option value or combination, printed without a traceback.
CLIError = UsageError


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
    terminated: list[int] = []
    try:
        with _sigterm_as_interrupt(terminated):
            return int(args.func(args) or 0)
    except OmnireidError as exc:
        report_error(args.command, exc)
        return exc.exit_code
    except OSError as exc:
        if not (is_write_failure(exc) and exc.filename):
            raise
        report_error(args.command, output_error(exc.filename, exc))
        return 2
    except KeyboardInterrupt as exc:
        detail = clean_message(exc.args[0]) if exc.args else "interrupted"
        if terminated:
            detail = f"stopped by SIGTERM; {detail}"
        print(f"\nomnireid {args.command}: {detail}", file=sys.stderr)
        return 143 if terminated else 130


@contextlib.contextmanager
def _sigterm_as_interrupt(terminated: list[int]):
    """While the command runs, SIGTERM raises KeyboardInterrupt like Ctrl-C, so a run stopped by
    a job scheduler ends the same clean way (checkpoint named, folder released, temporary files
    removed); ``terminated`` records that it happened. Outside the main thread (where Python
    cannot take signals) nothing changes."""

    def handler(signum, frame):
        if not terminated:  # a second SIGTERM while stopping does not interrupt the clean-up
            terminated.append(signum)
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_error(command: str, exc: BaseException) -> None:
    """Print ``exc`` as ``omnireid COMMAND: error: ...`` without terminal control codes; the
    first line names the file or option, further lines (when there are any) give details."""
    text = clean_message(str(exc)) or type(exc).__name__
    first, _, rest = text.partition("\n")
    print(f"omnireid {command}: error: {first}", file=sys.stderr)
    for line in rest.splitlines():
        print(f"  {line}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
