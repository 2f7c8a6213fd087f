"""Small helpers shared by CLI commands: argument parsing and table printing."""

from __future__ import annotations

import re
from collections.abc import Sequence

from omnireid.cli import CLIError


def parse_size(text: str) -> tuple[int, int]:
    """'256x128' -> (256, 128) as (height, width)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not m:
        raise CLIError(f"size must look like HEIGHTxWIDTH, e.g. 256x128 (got {text!r})")
    return int(m.group(1)), int(m.group(2))


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
