"""A self-contained HTML page for an evaluation: metric tables and ranked-list pictures."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omnireid.files import write_text

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 0.5em 0 1.5em 0; }
figcaption { font-size: 90%; color: #555; }
img { max-width: 100%; }
.legend span { padding: 0 6px; color: white; }
"""


@dataclass
class ReportSection:
    """One evaluated target: its metrics and the pictures of its worst queries."""

    name: str
    metrics: Mapping[str, float | int | str]
    pictures: Sequence[tuple[str, str]] = field(default_factory=list)  # (relative path, caption)
    notes: Sequence[str] = field(default_factory=list)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{100 * value:.2f}" if 0.0 <= value <= 1.0 else f"{value:.4g}"
    return str(value)


def _table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(
    out_dir: str | os.PathLike,
    title: str,
    sections: Sequence[ReportSection],
    columns: Sequence[str] = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP"),
    settings: Mapping[str, object] | None = None,
) -> Path:
    """Write ``out_dir/index.html`` (atomically) and return its path.

    Rates in [0, 1] are shown as percentages. With several sections a summary table comes first
    (one row per target: the cross-domain table).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if settings:
        parts.append(_table(["setting", "value"], [(k, str(v)) for k, v in settings.items()]))
    if len(sections) > 1:
        parts.append("<h2>Summary</h2><p>Rates in %.</p>")
        rows = [[s.name, *(s.metrics.get(c, "") for c in columns)] for s in sections]
        parts.append(_table(["target", *columns], rows))
    for s in sections:
        parts.append(f"<h2 id='{html.escape(s.name)}'>{html.escape(s.name)}</h2>")
        parts.append(_table(["metric", "value"], [(k, v) for k, v in s.metrics.items()]))
        parts.extend(f"<p>{html.escape(n)}</p>" for n in s.notes)
        if s.pictures:
            parts.append(
                "<p class='legend'>Worst queries first (lowest AP). Query framed "
                "<span style='background:#285ac8'>blue</span>, true matches "
                "<span style='background:#1eaa3c'>green</span>, false matches "
                "<span style='background:#d72828'>red</span>; below each image its rank and "
                "distance.</p>"
            )
        for rel, caption in s.pictures:
            parts.append(
                f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return write_text(out / "index.html", "\n".join(parts))
