"""The report rendered: Markdown with the figures beside it, and one self-contained HTML page
(figures embedded as base64 PNG, so it opens offline and travels as one file).

Each group shows its settings table (one row per setting, the arm's BLEU effect and verdict),
its finding, every comparison against the baseline, and its figures."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from analysis.report import Report, Section

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%}figure{margin:1em 0}"
    ".finding{background:#f6f8fa;padding:0.6em;border-left:4px solid #4a7}"
    "details{margin:0.5em 0 1.5em}"
)
COMPARISONS_TITLE = "Every comparison against the baseline (Holm-adjusted over the whole report)"


def _columns(rows: list[dict]) -> list[str]:
    return [c for c in rows[0] if c != "runs"] if rows else []


def _markdown_table(rows: list[dict], links: bool) -> list[str]:
    columns = _columns(rows)
    if not columns:
        return []
    head = columns + (["MLflow"] if links else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r[c]) for c in columns]
        if links:
            cells.append(" ".join(f"[{label}]({url})" for label, url in r["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", *[f"{t}\n" for t in report.intro]]
    for s in report.sections:
        lines += [f"## {s.group}", "", f"**{s.question}**", ""]
        lines += _markdown_table(s.rows, links=True)
        lines += [f"**Finding.** {s.finding}", ""]
        if s.comparisons:
            lines += [f"**{COMPARISONS_TITLE}.**", "", *_markdown_table(s.comparisons, links=False)]
        lines += [f"![{name}](figures/{name}.png)\n" for name in s.figures]
    lines += ["## Trials that did not finish", ""]
    if report.not_finished:
        lines += ["| trial | status | reason | MLflow |", "|---|---|---|---|"]
        lines += [
            f"| {r['trial']} | {r['status']} | {r['reason']} | [run]({r['run']}) |"
            for r in report.not_finished
        ]
    else:
        lines.append("None: every trial finished.")
    return "\n".join(lines) + "\n"


def _html_table(rows: list[dict], links: bool) -> str:
    e = html.escape
    columns = _columns(rows)
    if not columns:
        return ""
    head = "".join(f"<th>{e(c)}</th>" for c in columns) + ("<th>MLflow</th>" if links else "")
    body = []
    for r in rows:
        cells = "".join(f"<td>{e(str(r[c]))}</td>" for c in columns)
        if links:
            anchors = " ".join(f'<a href="{e(url)}">{e(label)}</a>' for label, url in r["runs"])
            cells += f"<td>{anchors}</td>"
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_section(s: Section, out: Path) -> list[str]:
    e = html.escape
    body = [f'<h2 id="{e(s.group)}">{e(s.group)}</h2>', f"<p><b>{e(s.question)}</b></p>"]
    body += [_html_table(s.rows, links=True), f'<p class="finding"><b>Finding.</b> {e(s.finding)}</p>']
    if s.comparisons:
        body.append(f"<details open><summary>{e(COMPARISONS_TITLE)}</summary>")
        body += [_html_table(s.comparisons, links=False), "</details>"]
    for name in s.figures:
        data = base64.b64encode((out / "figures" / f"{name}.png").read_bytes()).decode()
        image = f'<img alt="{e(name)}" src="data:image/png;base64,{data}">'
        body.append(f"<figure>{image}<figcaption>{e(name)}</figcaption></figure>")
    return body


def to_html(report: Report, out: Path) -> str:
    """The report as one HTML page, figures embedded as base64 PNG."""
    e = html.escape
    body = [f"<h1>{e(report.title)}</h1>", *[f"<p>{e(t)}</p>" for t in report.intro]]
    for s in report.sections:
        body += _html_section(s, out)
    body.append("<h2>Trials that did not finish</h2>")
    if report.not_finished:
        rows = [
            {**{k: r[k] for k in ("trial", "status", "reason")}, "runs": [("run", r["run"])]}
            for r in report.not_finished
        ]
        body.append(_html_table(rows, links=True))
    else:
        body.append("<p>None: every trial finished.</p>")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(report.title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write(report: Report, out: Path) -> tuple[Path, Path]:
    md, page = out / "report.md", out / "report.html"
    md.write_text(to_markdown(report))
    page.write_text(to_html(report, out))
    return md, page
