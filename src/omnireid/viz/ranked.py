"""Ranked-list pictures: a query and its top-k gallery images, true matches framed green.

Drawn with PIL only. Gallery images the protocol removes from a query's list (same identity and
camera under ``"market"``/``"cuhk03"``, the query's own copy under ``"no_camera"``) are left out
of its picture, so the picture shows the ranking the metrics were computed on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from omnireid.errors import UsageError
from omnireid.files import atomic_path

logger = logging.getLogger(__name__)

GREEN = (30, 170, 60)
RED = (215, 40, 40)
QUERY_BLUE = (40, 90, 200)
BORDER = 4
GAP = 6
QUERY_GAP = 24
LABEL_HEIGHT = 28


@dataclass(frozen=True)
class RankedListPicture:
    """Where one picture was saved and what it shows."""

    path: Path
    query_index: int
    query_path: str
    ap: float
    matches: list[bool]


def _thumb(path: str, size: tuple[int, int]) -> Image.Image:
    height, width = size
    try:
        with Image.open(path) as img:
            return img.convert("RGB").resize((width, height), Image.BILINEAR)
    except (OSError, ValueError):
        logger.warning("cannot read %s; drawing a grey placeholder", path)
        return Image.new("RGB", (width, height), (128, 128, 128))


def draw_ranked_list(
    query_path: str,
    gallery_paths: Sequence[str],
    matches: Sequence[bool],
    size: tuple[int, int] = (128, 64),
    query_label: str = "query",
    gallery_labels: Sequence[str] | None = None,
) -> Image.Image:
    """One row: the query (blue frame), a gap, then the gallery images framed green (true match)
    or red (false match), each with a small label underneath.

    Args:
        size: (height, width) of every thumbnail.
    """
    if len(gallery_paths) != len(matches):
        raise UsageError("gallery_paths and matches must have the same length")
    height, width = size
    cell_w, cell_h = width + 2 * BORDER, height + 2 * BORDER
    n = len(gallery_paths)
    canvas_w = cell_w + QUERY_GAP + n * (cell_w + GAP) + GAP
    canvas = Image.new("RGB", (canvas_w, cell_h + LABEL_HEIGHT + 2 * GAP), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    labels = list(gallery_labels) if gallery_labels is not None else [str(k + 1) for k in range(n)]

    def put(img: Image.Image, x: int, colour: tuple[int, int, int], label: str) -> None:
        draw.rectangle([x, GAP, x + cell_w - 1, GAP + cell_h - 1], fill=colour)
        canvas.paste(img, (x + BORDER, GAP + BORDER))
        draw.text((x + 2, GAP + cell_h + 2), label, fill=(0, 0, 0), font=font)

    put(_thumb(query_path, size), GAP, QUERY_BLUE, query_label)
    x = GAP + cell_w + QUERY_GAP
    for path, hit, label in zip(gallery_paths, matches, labels):
        put(_thumb(path, size), x, GREEN if hit else RED, label)
        x += cell_w + GAP
    return canvas


def save_ranked_lists(
    distmat: np.ndarray,
    query_paths: Sequence[str],
    gallery_paths: Sequence[str],
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    removed: Sequence[np.ndarray],
    query_ap: np.ndarray,
    out_dir: str | os.PathLike,
    topk: int = 10,
    num_queries: int = 20,
    size: tuple[int, int] = (128, 64),
) -> list[RankedListPicture]:
    """Save pictures of the ``num_queries`` worst queries (lowest AP first) as PNG files.

    Args:
        distmat: (Q, G) distances.
        removed: for each query, the gallery indices its protocol removes.
        query_ap: (Q,) per-query AP (NaN for skipped queries, which are not drawn).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ap = np.asarray(query_ap, np.float64)
    candidates = np.flatnonzero(~np.isnan(ap))
    worst = candidates[np.argsort(ap[candidates], kind="stable")][:num_queries]
    pictures = []
    for place, q in enumerate(worst):
        row = distmat[q]
        order = np.argsort(row)
        keep = np.ones(len(row), bool)
        keep[np.asarray(removed[q], np.int64)] = False
        top = order[keep[order]][:topk]
        hits = [bool(g_pids[g] == q_pids[q]) for g in top]
        image = draw_ranked_list(
            query_paths[q],
            [gallery_paths[g] for g in top],
            hits,
            size=size,
            query_label=f"AP {ap[q]:.2f}",
            gallery_labels=[f"{k + 1}: {row[g]:.3g}" for k, g in enumerate(top)],
        )
        path = out / f"{place + 1:03d}_query{q:05d}.png"
        with atomic_path(path, durable=False) as tmp:
            image.save(tmp)
        pictures.append(RankedListPicture(path, int(q), query_paths[q], float(ap[q]), hits))
    return pictures
