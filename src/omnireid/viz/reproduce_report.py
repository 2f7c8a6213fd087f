"""The report of ``omnireid reproduce``: ``report.html`` (tables, plot, claims) and ``results.png``.

The plot needs matplotlib (``pip install omnireid[viz]``), imported only here; without it the
HTML report is written without the plot and says so.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omnireid.files import write_text
from omnireid.viz.figures import pyplot, save_figure

logger = logging.getLogger(__name__)

_LABELS = {"osnet": "OSNet", "osnet_ibn": "OSNet-IBN", "osnet_ain": "OSNet-AIN", "child": "searched child"}
_SETTINGS = ("same-domain", "style", "population", "both", "multi-source")
_SETTING_LABELS = {"same-domain": "same domain", "style": "style shift", "population": "population shift",
                   "both": "both shifts", "multi-source": "multi-source (held out)"}
_VERDICT_COLOURS = {"holds": "#1a7f37", "fails": "#cf222e", "not resolved": "#7d4e00"}


def _cell(entry: Mapping[str, Any] | None, metric: str) -> str:
    if entry is None:
        return "-"
    std = entry.get(f"{metric}_std")
    return f"{entry[metric]:.1f}" + (f" ± {std:.1f}" if std is not None else "")


def results_table(summary: Sequence[Mapping[str, Any]], metric: str) -> list[list[str]]:
    """Rows ``[model, setting1, setting2, ...]`` of ``mean ± std`` (percent) for ``metric``."""
    index = {(s["model"], s["setting"]): s for s in summary}
    models = [m for m in _LABELS if any(k[0] == m for k in index)]
    settings = [s for s in _SETTINGS if any(k[1] == s for k in index)]
    return [[_LABELS[m], *(_cell(index.get((m, s)), metric) for s in settings)] for m in models]


def plot_results(summary: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Grouped bars: rank-1 per setting and model, error bars = standard deviation over seeds."""
    plt = pyplot("plotting the reproduction")
    index = {(s["model"], s["setting"]): s for s in summary}
    models = [m for m in _LABELS if any(k[0] == m for k in index)]
    settings = [s for s in _SETTINGS if any(k[1] == s for k in index)]
    fig, ax = plt.subplots(figsize=(1.9 * len(settings) + 2, 4))
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(settings))]
        means = [index[(m, s)]["rank1"] if (m, s) in index else float("nan") for s in settings]
        errs = [(index[(m, s)].get("rank1_std") or 0.0) if (m, s) in index else 0.0 for s in settings]
        ax.bar(xs, means, width, yerr=errs, capsize=3, label=_LABELS[m])
    ax.set_xticks(range(len(settings)))
    ax.set_xticklabels([_SETTING_LABELS[s] for s in settings])
    ax.set_ylabel("rank-1 (%)")
    seeds = max((len(s["seeds"]) for s in summary), default=0)
    ax.set_title(f"rank-1 per setting; bars: mean over {seeds} seed{'s' if seeds != 1 else ''}"
                 + (", error bars: std" if seeds > 1 else ""), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _table_html(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


_COMPARISON_HEAD = ("comparison (rank-1 points)", "per seed", "mean", "sd", "resolved if |mean| >", "verdict")


def comparison_rows(claim: Mapping[str, Any]) -> list[list[str]]:
    """One row per paired comparison of a claim's evidence (columns: ``_COMPARISON_HEAD``)."""
    return [[f"{c['a']} - {c['b']}", ", ".join(f"{d:+.1f}" for d in c["differences"]),
             f"{c['mean_difference']:+.2f}", "-" if c["sd_difference"] is None else f"{c['sd_difference']:.2f}",
             f"{c['threshold']:.2f}", c["verdict"]]
            for c in claim["evidence"].get("comparisons", [])]


def target_table(rows: Sequence[Mapping[str, Any]], metric: str) -> tuple[list[str], list[list[str]]]:
    """Head and rows of ``mean ± std`` over seeds per model and target domain (percent): the
    single-source targets in their order, then the held-out domains of the multi-source runs."""
    values: dict[tuple[str, str], list[float]] = {}
    columns: list[str] = []
    for r in rows:
        for target, m in r["targets"].items():
            col = f"{target.removeprefix('synthetic_')}" + (" (held out)" if r["setting"] == "multi-source" else "")
            if col not in columns:
                columns.append(col)
            values.setdefault((r["model"], col), []).append(float(m[metric]))
    columns.sort(key=lambda c: c.endswith("(held out)"))
    models = [m for m in _LABELS if any(k[0] == m for k in values)]
    table = []
    for m in models:
        cells = []
        for col in columns:
            v = values.get((m, col))
            cells.append("-" if not v else _cell({metric: statistics.fmean(v),
                                                  f"{metric}_std": statistics.stdev(v) if len(v) > 1 else None},
                                                 metric))
        table.append([_LABELS[m], *cells])
    return ["model", *columns], table


def _claim_html(claim: Mapping[str, Any]) -> str:
    ev = dict(claim["evidence"])
    paper = ev.pop("paper", None)
    colour = _VERDICT_COLOURS.get(claim["verdict"], "#000")
    rows = comparison_rows(claim)
    parts = [f"<h3>({html.escape(claim['id'])}) {html.escape(claim['statement'])} "
             f"<span style='color:{colour}'>{html.escape(claim['verdict'])}</span></h3>"]
    if rows:
        parts.append(_table_html(_COMPARISON_HEAD, rows))
        parts.append(f"<p class='small'>Test: {html.escape(ev['comparisons'][0]['test'])}</p>")
    if ev.get("note"):
        parts.append(f"<p class='small'>{html.escape(ev['note'])}</p>")
    rest = {k: v for k, v in ev.items() if k not in ("comparisons", "note")}
    if rest:
        parts.append("<details><summary>more evidence</summary><pre>"
                     f"{html.escape(json.dumps(rest, indent=1))}</pre></details>")
    if paper:
        parts.append(f"<p class='paper'><b>Published (real datasets)</b>: {html.escape(paper.get('note', ''))} "
                     f"<i>Source: {html.escape(paper.get('source', ''))}.</i></p>")
        if paper.get("numbers"):
            parts.append("<details><summary>the published tables</summary><pre>"
                         f"{html.escape(json.dumps(paper['numbers'], indent=1))}</pre></details>")
    return "\n".join(parts)


def report_html(claims: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                summary: Sequence[Mapping[str, Any]], info: Mapping[str, Any], plot: str | None,
                no_plot: str = "not drawn") -> str:
    """The whole report as one self-contained HTML page (the plot inlined as PNG data; without
    one, ``no_plot`` says why)."""
    settings = [s for s in _SETTINGS if any(e["setting"] == s for e in summary)]
    head = ["model", *(_SETTING_LABELS[s] for s in settings)]
    plan = info.get("plan", {})
    bench = plan.get("benchmark", {})
    search = info.get("search") or {}
    seeds = plan.get("seeds", [])
    css = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
           "text-align:right}td:first-child,th:first-child{text-align:left}"
           ".small{font-size:0.9em;color:#444}.paper{background:#f4f4f4;padding:0.5em}")
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>omnireid reproduce</title>"
           f"<style>{css}</style></head><body>",
           "<h1>OSNet, OSNet-IBN, OSNet-AIN and a searched child on the domain-shift benchmark</h1>",
           f"<p>Seeds {', '.join(map(str, seeds))}; width x{plan.get('width')}; source "
           f"{html.escape(str(bench.get('source')))}; targets by shift "
           f"{html.escape(json.dumps(bench.get('shift_targets')))}; leave-one-domain-out folds "
           f"{html.escape(json.dumps([f for f in bench.get('leave_one_out', [])]))} (used: "
           f"{html.escape(str(plan.get('folds') if plan.get('folds') is not None else 'those with a single-source counterpart'))}); "
           f"{info.get('steps_per_epoch')} steps per epoch for every training run.</p>",
           "<h2>Rank-1 (%), mean ± std over seeds</h2>", _table_html(head, results_table(summary, "rank1")),
           "<h2>mAP (%), mean ± std over seeds</h2>", _table_html(head, results_table(summary, "mAP")),
           "<h2>Rank-1 (%) per target domain, mean ± std over seeds</h2>", _table_html(*target_table(rows, "rank1"))]
    if plot:
        out.append(f"<img alt='rank-1 per setting' src='data:image/png;base64,{plot}'>")
    else:
        out.append(f"<p>(no plot: {html.escape(no_plot)})</p>")
    if search:
        out.append(f"<p>{html.escape(_search_sentence(info))}</p>")
    out.append("<h2>The paper's claims</h2>")
    out += [_claim_html(c) for c in claims]
    out.append("<h2>Per seed</h2>")
    out.append(_table_html(["model", "setting", "seed", "rank-1", "mAP", "targets"],
                           [[_LABELS.get(r["model"], r["model"]), r["setting"], r["seed"], f"{r['rank1']:.1f}",
                             f"{r['mAP']:.1f}", ", ".join(f"{t} {m['rank1']:.1f}" for t, m in r["targets"].items())]
                            for r in rows]))
    out.append(f"<h2>Run</h2><p class='small'>{html.escape(_run_line(info))}</p>")
    out.append("</body></html>")
    return "\n".join(out)


def _table_md(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return [line(head), line(["---"] * len(head)), *(line(r) for r in rows), ""]


def _run_line(info: Mapping[str, Any]) -> str:
    env = info.get("environment", {})
    return (f"Machine: {env.get('cpu', '?')}, {env.get('cpu_count')} CPUs; torch {env.get('torch')}; "
            f"{info.get('jobs')} worker(s) x {info.get('threads_per_job')} thread(s); wall time of this "
            f"session {info.get('wall_seconds_this_session', 0):.0f} s"
            f"{' (continued an earlier session)' if info.get('resumed') else ''}; CPU time of all training "
            f"runs and the search {info.get('cpu_seconds_all_cells', 0):.0f} s; load average at the end "
            f"{env.get('load_average', '?')}.")


def _search_sentence(info: Mapping[str, Any]) -> str:
    """One line on the search of a reproduction: the child, the recipe, steps, time, decided."""
    search = info.get("search") or {}
    plan = info.get("plan", {})
    sources = ((plan.get("search") or {}).get("data") or {}).get("sources") or []
    recipe = plan.get("search_recipe")
    where = f"recipe {recipe}, " if recipe else ""
    where += f"on {'+'.join(str(x) for x in sources)}, " if sources else ""
    return (f"Searched child: {', '.join(search['arch']['blocks'])} (search: {where}{search.get('steps')} "
            f"steps, {search.get('seconds', 0):.0f} s wall; every block decided, p(chosen) >= 0.5: "
            f"{'yes' if search.get('decided') else 'no'}).")


def report_markdown(claims: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                    summary: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> str:
    """The report's tables and verdicts as Markdown (``report.md``), to paste into documents."""
    settings = [s for s in _SETTINGS if any(e["setting"] == s for e in summary)]
    head = ["model", *(_SETTING_LABELS[s] for s in settings)]
    plan = info.get("plan", {})
    search = info.get("search") or {}
    out = ["# omnireid reproduce", "",
           f"Seeds {', '.join(map(str, plan.get('seeds', [])))}; width x{plan.get('width')}; source "
           f"`{plan.get('benchmark', {}).get('source')}`; {info.get('steps_per_epoch')} steps per epoch for "
           "every training run.", "",
           "## Rank-1 (%), mean ± std over seeds", "", *_table_md(head, results_table(summary, "rank1")),
           "## mAP (%), mean ± std over seeds", "", *_table_md(head, results_table(summary, "mAP")),
           "## Rank-1 (%) per target domain, mean ± std over seeds", "", *_table_md(*target_table(rows, "rank1"))]
    if search:
        out += [_search_sentence(info), ""]
    out += ["## The paper's claims", "", *_table_md(["claim", "verdict", "statement"],
                                                   [[c["id"], f"**{c['verdict']}**", c["statement"]] for c in claims])]
    for c in claims:
        ev = c["evidence"]
        out += [f"### ({c['id']}) {c['statement'].rstrip('.')}: {c['verdict']}", ""]
        table = comparison_rows(c)
        if table:
            out += [*_table_md(_COMPARISON_HEAD, table), f"Test: {ev['comparisons'][0]['test']}", ""]
        if ev.get("note"):
            out += [ev["note"], ""]
        paper = ev.get("paper")
        if paper:
            out += [f"Published (real datasets): {paper.get('note', '')} Source: {paper.get('source', '')}.", ""]
    out += ["## Run", "", _run_line(info), ""]
    return "\n".join(out)


def write_report(folder: str | os.PathLike, claims, rows, summary, info) -> Path:
    """Write ``results.png`` (when matplotlib is installed), ``report.md`` and ``report.html``
    into ``folder``; returns the HTML report's path."""
    folder = Path(folder)
    plot_b64, no_plot = None, "not drawn"
    try:
        png = plot_results(summary, folder / "results.png")
        plot_b64 = base64.b64encode(png.read_bytes()).decode()
    except ImportError as exc:  # the missing extra, named by omnireid.extras.require
        logger.warning("no plot: %s", exc)
        no_plot = str(exc)
    write_text(folder / "report.md", report_markdown(claims, rows, summary, info))
    path = folder / "report.html"
    write_text(path, report_html(claims, rows, summary, info, plot_b64, no_plot))
    return path


__all__ = ["comparison_rows", "plot_results", "report_html", "report_markdown", "results_table", "target_table",
           "write_report"]
