"""Small helpers shared by CLI commands: argument types (values are checked where they are
parsed, so a bad one is an argparse error naming the option) and table printing."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from omnireid.cli import CLIError

#: The smallest image side the models accept (OSNet halves its input four times).
MIN_SIDE = 16


def parse_size(text: str) -> tuple[int, int]:
    """'256x128' -> (256, 128) as (height, width); each side at least :data:`MIN_SIDE`."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not m:
        raise CLIError(f"size must look like HEIGHTxWIDTH, e.g. 256x128 (got {text!r})")
    height, width = int(m.group(1)), int(m.group(2))
    if min(height, width) < MIN_SIDE:
        raise CLIError(f"size {text!r} is too small: the models need at least {MIN_SIDE}x{MIN_SIDE} pixels "
                       "(256x128 is usual)")
    return height, width


def size_arg(text: str) -> tuple[int, int]:
    """argparse type for HEIGHTxWIDTH."""
    try:
        return parse_size(text)
    except CLIError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def positive_int_list(text: str) -> list[int]:
    """argparse type: comma-separated integers >= 1 (``1,16,64``)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    return [positive_int(t) for t in items]


def device_arg(text: str) -> str:
    """argparse type: ``cpu``, ``cuda``, ``cuda:N`` (available on this machine) ..."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (cpu, cuda, cuda:N)") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text!r}: no CUDA GPU is available on this machine")
        if dev.index is not None and dev.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {count} GPU(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text!r}: device type {dev.type!r} is not supported")
    return text


def recipe_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides of a training-like command, plus ``-o`` (``train.output_dir``) and
    ``--quiet`` (``train.progress=false``)."""
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f"train.output_dir={args.output}")
    if args.quiet:
        overrides.append("train.progress=false")
    return overrides


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print an aligned text table (numbers right-aligned)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def fmt(row: Sequence[str]) -> str:
        out = []
        for i, c in enumerate(row):
            numeric = bool(re.fullmatch(r"[-+]?[\d,.]+%?", c))
            out.append(c.rjust(widths[i]) if numeric else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    print(fmt(list(headers)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(fmt(row))
