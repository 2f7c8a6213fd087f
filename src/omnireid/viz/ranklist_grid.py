"""A minimal ranked-list picture: each row a query followed by its top-k gallery matches,
framed green (same identity) or red (different identity)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from omnireid.data.records import Sample


def draw_ranked_grid(
    distmat: np.ndarray,
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    path: str | os.PathLike,
    *,
    num_queries: int = 8,
    topk: int = 8,
    cell: tuple[int, int] = (128, 64),
    seed: int = 0,
) -> Path:
    """Save a grid of ``num_queries`` random queries x (1 + ``topk``) images as PNG.

    Args:
        distmat: (Q, G) distances between ``query`` and ``gallery`` (smaller is closer).
        cell: (height, width) of each thumbnail.

    Gallery images of the query's own identity seen by the same camera are skipped (the
    Market-1501 protocol), as are junk images (``pid < 0``).
    """
    h, w = cell
    pad, gap = 4, 10
    rng = np.random.default_rng(seed)
    rows = sorted(rng.choice(len(query), size=min(num_queries, len(query)), replace=False).tolist())
    canvas = Image.new("RGB", (pad + (w + pad) * (topk + 1) + gap, pad + (h + pad) * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, qi in enumerate(rows):
        q = query[qi]
        y = pad + r * (h + pad)
        _paste(canvas, q.path, pad, y, w, h)
        draw.rectangle([pad - 2, y - 2, pad + w + 1, y + h + 1], outline=(40, 40, 40), width=2)
        order = np.argsort(distmat[qi], kind="stable")
        shown = 0
        for gi in order:
            g = gallery[gi]
            if g.pid < 0 or (g.pid == q.pid and g.camid == q.camid):
                continue
            x = pad + (shown + 1) * (w + pad) + gap
            _paste(canvas, g.path, x, y, w, h)
            colour = (30, 170, 60) if g.pid == q.pid else (210, 40, 40)
            draw.rectangle([x - 2, y - 2, x + w + 1, y + h + 1], outline=colour, width=3)
            shown += 1
            if shown == topk:
                break
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    canvas.save(tmp)
    os.replace(tmp, path)
    return path


def _paste(canvas: Image.Image, image_path: str, x: int, y: int, w: int, h: int) -> None:
    with Image.open(image_path) as im:
        canvas.paste(im.convert("RGB").resize((w, h), Image.BILINEAR), (x, y))


__all__ = ["draw_ranked_grid"]
