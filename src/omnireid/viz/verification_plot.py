"""Plot of a verification calibration: the two distance distributions and the ROC.

Needs matplotlib (``pip install omnireid[viz]``), imported only when a plot is drawn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from omnireid.viz.figures import pyplot as _pyplot
from omnireid.viz.figures import save_figure


def plot_verification(result: Any, path: str | os.PathLike, title: str = "") -> Path:
    """Left: histograms of same-person and different-person cosine distances with the threshold
    of each operating point; right: the ROC (TPR against FPR, log scale) with those points and
    the EER.

    Args:
        result: a :class:`omnireid.evaluation.verification.VerificationResult`.
        path: the PNG to write (atomically).
        title: a line above both panels.
    """
    plt = _pyplot()
    fig, (ax_h, ax_r) = plt.subplots(1, 2, figsize=(11, 4.2))
    pos, neg = result.positive, result.negative
    lo = float(min(pos.min(), neg.min()))
    hi = float(max(pos.max(), neg.max()))
    bins = np.linspace(lo, hi, 80)
    ax_h.hist(neg, bins=bins, density=True, alpha=0.55, color="tab:red",
              label=f"different person ({len(neg):,} pairs)")
    ax_h.hist(pos, bins=bins, density=True, alpha=0.55, color="tab:green",
              label=f"same person ({len(pos):,} pairs)")
    for p in result.points:
        ax_h.axvline(p.threshold, color="k", lw=0.8, ls="--")
        ax_h.text(p.threshold, ax_h.get_ylim()[1] * 0.95, f" FPR {p.target_fpr:g}", rotation=90,
                  va="top", fontsize=7)
    ax_h.set_xlabel("cosine distance")
    ax_h.set_ylabel("density")
    ax_h.legend(fontsize=8, loc="upper right")
    fpr, tpr = result.roc.fpr, result.roc.tpr
    floor = 1.0 / max(result.roc.num_negative, 1)
    keep = fpr > 0
    ax_r.plot(fpr[keep], tpr[keep], color="tab:blue", lw=1.2)
    for p in result.points:
        ax_r.plot([max(p.fpr, floor)], [p.tpr], "o", color="k", ms=4)
        ax_r.annotate(f"{p.tpr:.3f} @ {p.target_fpr:g}", (max(p.fpr, floor), p.tpr),
                      textcoords="offset points", xytext=(5, -10), fontsize=7)
    ax_r.plot([result.eer], [1 - result.eer], "s", color="tab:orange", ms=5,
              label=f"EER {result.eer:.3f}")
    ax_r.set_xscale("log")
    ax_r.set_xlim(floor, 1.0)
    ax_r.set_ylim(0, 1.01)
    ax_r.set_xlabel("false match rate (FPR)")
    ax_r.set_ylabel("true match rate (TPR)")
    ax_r.grid(alpha=0.3, which="both")
    ax_r.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
