"""What every figure writer shares: matplotlib on the non-interactive backend (extra ``viz``)
and an atomic save that closes the figure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omnireid.extras import require
from omnireid.files import atomic_path


def pyplot(purpose: str = "plotting") -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or :class:`~omnireid.errors.MissingExtraError`
    naming the extra that installs it."""
    matplotlib = require("matplotlib", "viz", purpose)
    matplotlib.use("Agg", force=False)
    return require("matplotlib.pyplot", "viz", purpose)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix) and close it."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        fig.clear()
        pyplot().close(fig)
    return path
