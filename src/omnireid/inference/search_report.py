"""Pictures and an HTML page of gallery search results (PIL only, no plotting library)."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from omnireid.files import atomic_path, write_text
from omnireid.inference.preprocess import open_rgb


@dataclass
class Match:
    """One gallery hit: rank (1-based), gallery path (relative), absolute path, score."""

    rank: int
    path: str
    full_path: str
    score: float


def _thumb(path: str | os.PathLike, size: tuple[int, int]) -> Image.Image:
    try:
        img = open_rgb(path)
    except OSError:
        img = Image.new("RGB", (size[1], size[0]), (90, 90, 90))
    return img.resize((size[1], size[0]), Image.BILINEAR)


def draw_ranked_grid(
    queries: Sequence[str],
    matches: Sequence[Sequence[Match]],
    path: str | os.PathLike,
    thumb: tuple[int, int] = (128, 64),
) -> Path:
    """One row per query: the query crop, then its matches with rank and score. Writes a PNG."""
    h, w = thumb
    label = 14
    cols = 1 + max((len(m) for m in matches), default=0)
    pad = 4
    canvas = Image.new("RGB", (cols * (w + pad) + pad + 8, len(queries) * (h + label + pad) + pad),
                       "white")
    draw = ImageDraw.Draw(canvas)
    for r, (q, hits) in enumerate(zip(queries, matches)):
        y = pad + r * (h + label + pad)
        canvas.paste(_thumb(q, thumb), (pad, y + label))
        draw.text((pad, y), "query", fill=(0, 0, 160))
        for c, m in enumerate(hits, 1):
            x = pad + 8 + c * (w + pad)
            canvas.paste(_thumb(m.full_path, thumb), (x, y + label))
            draw.text((x, y), f"{m.rank}: {m.score:.3f}", fill=(0, 0, 0))
    path = Path(path)
    with atomic_path(path) as tmp:
        canvas.save(tmp)
    return path


def write_html(
    queries: Sequence[str],
    matches: Sequence[Sequence[Match]],
    path: str | os.PathLike,
    picture: str | None = None,
) -> Path:
    """An HTML page listing each query's matches (images linked by absolute file path)."""
    path = Path(path)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>omnireid search</title>",
             "<style>body{font-family:sans-serif} td{text-align:center;font-size:12px;"
             "padding:4px} img{height:128px}</style></head><body><h1>Gallery search</h1>"]
    if picture:
        parts.append(f"<p><img style='height:auto;max-width:100%' "
                     f"src='{html.escape(picture)}'></p>")
    for q, hits in zip(queries, matches):
        uri = Path(q).resolve().as_uri()
        parts.append(f"<h2>{html.escape(str(q))}</h2><table><tr><td><img src='{uri}'><br>query"
                     "</td>")
        for m in hits:
            parts.append(f"<td><img src='{Path(m.full_path).resolve().as_uri()}'><br>#{m.rank} "
                         f"{m.score:.3f}<br>{html.escape(m.path)}</td>")
        parts.append("</tr></table>")
    parts.append("</body></html>")
    return write_text(path, "\n".join(parts))
