"""Plot of the architecture search (NAS): candidate probabilities per block over the epochs.

Needs matplotlib (``pip install omnireid[viz]``), imported only when a plot is drawn.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from omnireid.viz.figures import pyplot, save_figure


def _pyplot():
    return pyplot("plotting the architecture search")


def plot_nas_probabilities(result: Any, path: str | os.PathLike) -> Path:
    """One panel per searchable block: the probability of each candidate after every epoch.

    Args:
        result: a :class:`omnireid.engine.nas.NasResult` (``history[e].probabilities`` is
            ``(num_blocks, num_candidates)``; ``block_names``, ``candidates``, ``arch``).
        path: the PNG to write (atomically).

    Returns:
        the path written.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    names, candidates, history = result.block_names, result.candidates, result.history
    epochs = [r.epoch + 1 for r in history]
    cols = 3
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), sharex=True, sharey=True,
                             squeeze=False)
    for b, name in enumerate(names):
        ax = axes[b // cols][b % cols]
        for c, cand in enumerate(candidates):
            ax.plot(epochs, [r.probabilities[b][c] for r in history], marker="o", markersize=3,
                    label=cand)
        chosen = result.arch.blocks[b].value
        ax.set_title(f"{name} -> {chosen}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if b % cols == 0:
            ax.set_ylabel("probability")
        if b // cols == rows - 1:
            ax.set_xlabel("epoch")
    for b in range(len(names), rows * cols):
        axes[b // cols][b % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    temps = sorted({r.temperature for r in history}, reverse=True)
    fig.legend(handles, labels, loc="upper center", ncol=len(candidates), title="IN placement")
    fig.suptitle(f"candidate probabilities ({result.mode}; lambda {', '.join(f'{t:g}' for t in temps)})",
                 y=0.01, va="bottom", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.9))
    return save_figure(fig, path, dpi=100)


def plot_nas_seeds(results: Any, path: str | os.PathLike) -> Path:
    """One panel per searchable block: the final probability of each candidate in every seed's
    search, as grouped bars (a dashed line at 1/K, the uniform start), so that a reader sees at a
    glance how far each block moved from uniform and whether the seeds agree.

    Args:
        results: :class:`omnireid.engine.nas.NasResult` per seed (same blocks and candidates).
        path: the PNG to write (atomically).

    Returns:
        the path written.
    """
    plt = _pyplot()

    results = list(results)
    if not results:
        raise ValueError("plot_nas_seeds needs at least one search result")
    names, candidates = results[0].block_names, results[0].candidates
    seeds = [r.config["train"]["seed"] for r in results]
    cols = 3
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), sharey=True, squeeze=False)
    width = 0.8 / len(results)
    for b, name in enumerate(names):
        ax = axes[b // cols][b % cols]
        for i, r in enumerate(results):
            final = r.history[-1].probabilities[b]
            ax.bar([c + (i - (len(results) - 1) / 2) * width for c in range(len(candidates))], final,
                   width=width, label=f"seed {seeds[i]}")
        ax.axhline(1.0 / len(candidates), color="k", linestyle="--", linewidth=0.8)
        picks = [r.arch.blocks[b].value for r in results]
        ax.set_title(f"{name}: {', '.join(picks)}", fontsize=9)
        ax.set_xticks(range(len(candidates)), candidates, fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3, axis="y")
        if b % cols == 0:
            ax.set_ylabel("final probability")
    for b in range(len(names), rows * cols):
        axes[b // cols][b % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(results))
    fig.suptitle("final candidate probabilities per block and seed (dashed: uniform)", y=0.01,
                 va="bottom", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.9))
    return save_figure(fig, path, dpi=100)
