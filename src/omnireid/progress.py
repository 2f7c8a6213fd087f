"""Progress bars only where a person watches a terminal.

A bar is drawn on standard error when it is a terminal and the caller wants progress; when the
output goes to a file or a pipe nothing is drawn (callers print one summary line per stage
instead), so logs hold no bar refreshes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def on_terminal(stream: Any = None) -> bool:
    """Whether ``stream`` (default: standard error) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
                 unit: str = "it", enabled: bool = True, leave: bool = False, **kwargs: Any) -> tqdm:
    """A ``tqdm`` bar that is drawn only when ``enabled`` and standard error is a terminal.

    The bar disappears when it closes (``leave=False``); callers that want a record print a
    summary line.
    """
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True,
                disable=not (enabled and on_terminal()), **kwargs)


__all__ = ["on_terminal", "progress_bar"]
