"""Where training numbers go: a JSONL file (one record per epoch), optional TensorBoard, and a
loss/accuracy curve picture at the end."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omnireid.extras import require
from omnireid.files import atomic_write
from omnireid.viz.figures import pyplot, save_figure

logger = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


class MetricsLogger:
    """Appends records to ``metrics.jsonl`` (flushed every line); mirrors scalars to TensorBoard
    (``tb/``) when ``tensorboard=True`` and the package is installed. A disabled logger (non-main
    ranks) does nothing."""

    def __init__(self, output_dir: str | os.PathLike, *, tensorboard: bool = False, enabled: bool = True) -> None:
        self.path = Path(output_dir) / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            try:
                require("tensorboard", "tensorboard", "train.tensorboard")
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                logger.warning("%s; continuing without TensorBoard", exc)
            else:
                self._tb = SummaryWriter(str(Path(output_dir) / "tb"))

    def rewrite(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Replace the file with ``records`` (used on resume), atomically."""
        if not self.enabled:
            return
        with atomic_write(self.path) as f:
            for r in records:
                f.write(json.dumps(_plain(r)) + "\n")

    def log(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(_plain(record)) + "\n")
        if self._tb is not None:
            step = int(record.get("epoch", 0))
            for key, value in _flatten(record).items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self._tb.add_scalar(key, value, step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._tb is not None:
            self._tb.add_scalar(tag, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in record.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(records: list[Mapping[str, Any]], path: str | os.PathLike) -> Path | None:
    """Loss, training accuracy and (when evaluated) rank-1/mAP per epoch as a PNG.

    Needs matplotlib (``pip install omnireid[viz]``); returns ``None`` with a warning without it.
    """
    try:
        plt = pyplot("drawing curves")
    except ImportError as exc:
        logger.warning("curves not drawn: %s", exc)
        return None
    epochs = [r["epoch"] + 1 for r in records]
    evals = [(r["epoch"] + 1, r["eval"]) for r in records if r.get("eval")]
    ncols = 3 if evals else 2
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.4))
    axes[0].plot(epochs, [r["loss"] for r in records], marker="o", ms=3)
    axes[0].set_title("training loss")
    axes[1].plot(epochs, [100 * r["acc"] for r in records], marker="o", ms=3, color="tab:green")
    axes[1].set_title("training accuracy (%)")
    if evals:
        for name in evals[-1][1]:
            xs = [e for e, ev in evals if name in ev]
            axes[2].plot(xs, [100 * ev[name]["rank1"] for e, ev in evals if name in ev], marker="o", ms=3,
                         label=f"{name} rank-1")
            axes[2].plot(xs, [100 * ev[name]["mAP"] for e, ev in evals if name in ev], marker="s", ms=3,
                         ls="--", label=f"{name} mAP")
        axes[2].set_title("evaluation (%)")
        axes[2].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


__all__ = ["MetricsLogger", "plot_curves", "read_metrics"]
