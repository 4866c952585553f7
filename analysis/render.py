"""The report rendered: Markdown with the figures beside it, and one self-contained HTML page
(figures embedded as base64 PNG, so it opens offline and travels as one file).

Each group shows its settings table (one row per setting, the arm's BLEU effect and verdict),
its finding, every comparison against the baseline, and its figures; a crossed group shows its
factorial tables first and its main effects and interactions instead of per-setting verdicts."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ablab.analysis.report import GroupSection, Report

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222;"
    "line-height:1.4}"
    "table{border-collapse:collapse;font-size:0.8em;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}"
    "th{background:#f3f3f3}.t{text-align:left}"
    ".n{white-space:nowrap}"  # a number, an interval, a value ± sd: never broken across lines
    "img{max-width:100%}figure{margin:1em 0 2em}figcaption{font-size:0.85em;color:#444;max-width:60em}"
    ".caption{font-size:0.85em;color:#444;margin-bottom:0}"
    ".finding{background:#f6f8fa;padding:0.6em;border-left:4px solid #4a7}"
    "details{margin:0.5em 0 1.5em}summary{cursor:pointer;font-weight:600}code{font-size:0.95em}"
    "details table{font-size:0.74em}details td,details th{padding:2px 4px}"
)
NUMBER = re.compile(  # an interval; or a number, with its sd, its unit or a bound: 27.94 ± 0.33, ≤ 1/10,001
    r"\[[^\]]+\]|(?:p [=≤] |[≤<] )?[−+-]?\d[\d,./]*(?:e[−+-]?\d+)?(?: ± [−+-]?\d[\d,.]*)?(?: M\b| %)?"
)
TEXT_COLUMNS = {
    "setting",
    "changed",
    "verdict",
    "metric",
    "to resolve",
    "trial",
    "status",
    "reason",
    "MLflow",
    "effect",
    "kind",
    "seeds",
    "better in",
    "p per seed",
}
"""Columns of words, left-aligned; the others hold numbers, right-aligned."""
FAMILIES = "the primary metric first; Holm-adjusted within its family over the whole report"
COMPARISONS_TITLE = f"Every comparison against the baseline ({FAMILIES})"
EFFECTS_TITLE = f"The design's main effects, interactions and, where one is real, simple effects ({FAMILIES})"


SEARCH_TITLE = "How each point's values were chosen"
SAME_TEST_SET_TITLE = (
    "Same test set: sacreBLEU's paired bootstrap, one p per seed (do two outputs differ on these "
    "sentences? not a verdict)"
)


def _comparisons_title(s: GroupSection) -> str:
    return EFFECTS_TITLE if s.cell_tables else COMPARISONS_TITLE


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
            cells.append(" ".join(_markdown_link(*run) for run in r["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _markdown_link(label: str, run_id: str, url: str | None) -> str:
    """A run's link, or its id as text where the report has no links."""
    return f"[{label}]({url})" if url else f"{label} `{run_id[:8]}`"


def _html_link(label: str, run_id: str, url: str | None) -> str:
    e = html.escape
    return f'<a href="{e(url)}">{e(label)}</a>' if url else f"{e(label)} <code>{e(run_id[:8])}</code>"


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", *[f"{t}\n" for t in report.intro]]
    if report.searches:
        lines += [f"## {SEARCH_TITLE}", "", *_markdown_table(report.searches, links=False)]
    for s in report.sections:
        lines += [f"## {s.group}", "", f"**{s.question}**", ""]
        if s.design:
            lines += [s.design, ""]
        for caption, rows in s.cell_tables:
            lines += [f"*{caption}.*", "", *_markdown_table(rows, links=False)]
        lines += _markdown_table(s.rows, links=True)
        lines += [f"**Finding.** {s.finding}", ""]
        if s.expect:
            lines += [f"**Expected** (the spec's words). {s.expect}", ""]
        if s.comparisons:
            lines += [f"**{_comparisons_title(s)}.**", "", *_markdown_table(s.comparisons, links=False)]
        if s.same_test_set:
            lines += [f"*{SAME_TEST_SET_TITLE}.*", "", *_markdown_table(s.same_test_set, links=False)]
        for figure in s.figures:
            lines += [f"![{figure.name}](figures/{figure.name}.png)", "", f"*{figure.caption}*", ""]
    lines += ["## Trials that did not finish", ""]
    if report.not_finished:
        lines += _markdown_table(report.not_finished, links=True)
    else:
        lines.append("None: every trial finished.")
    return "\n".join(lines) + "\n"


def cell(text: str) -> str:
    """A table cell's HTML: escaped, each number kept on one line (``<span class="n">``), and a
    long name free to break after its underscores and commas (``no_label_<wbr>smoothing``)."""

    def words(part: str) -> str:
        return re.sub(r"([_,])", r"\1<wbr>", html.escape(part))

    out, last = [], 0
    for match in NUMBER.finditer(text):
        out += [words(text[last : match.start()]), f'<span class="n">{html.escape(match.group())}</span>']
        last = match.end()
    return "".join(out) + words(text[last:])


def _html_table(rows: list[dict], links: bool) -> str:
    e = html.escape
    columns = _columns(rows)
    if not columns:
        return ""
    names = columns + (["MLflow"] if links else [])
    align = {c: ' class="t"' if c in TEXT_COLUMNS else "" for c in names}
    head = "".join(f"<th{align[c]}>{e(c)}</th>" for c in names)
    body = []
    for r in rows:
        cells = "".join(f"<td{align[c]}>{cell(str(r[c]))}</td>" for c in columns)
        if links:
            cells += f'<td class="t">{" ".join(_html_link(*run) for run in r["runs"])}</td>'
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_section(s: GroupSection, out: Path) -> list[str]:
    e = html.escape
    body = [f'<h2 id="{e(s.group)}">{e(s.group)}</h2>', f"<p><b>{e(s.question)}</b></p>"]
    if s.design:
        body.append(f"<p>{e(s.design)}</p>")
    for caption, rows in s.cell_tables:
        body.append(f'<p class="caption">{e(caption)}.</p>{_html_table(rows, links=False)}')
    body += [_html_table(s.rows, links=True), f'<p class="finding"><b>Finding.</b> {e(s.finding)}</p>']
    if s.expect:
        body.append(f"<p><b>Expected</b> (the spec's words). {e(s.expect)}</p>")
    if s.comparisons:
        body.append(f"<details open><summary>{e(_comparisons_title(s))}</summary>")
        body += [_html_table(s.comparisons, links=False), "</details>"]
    if s.same_test_set:
        body.append(f"<details><summary>{e(SAME_TEST_SET_TITLE)}</summary>")
        body += [_html_table(s.same_test_set, links=False), "</details>"]
    for figure in s.figures:
        data = base64.b64encode((out / "figures" / f"{figure.name}.png").read_bytes()).decode()
        image = f'<img alt="{e(figure.caption)}" src="data:image/png;base64,{data}">'
        body.append(f"<figure>{image}<figcaption>{e(figure.caption)}</figcaption></figure>")
    return body


def to_html(report: Report, out: Path) -> str:
    """The report as one HTML page, figures embedded as base64 PNG."""
    e = html.escape
    body = [f"<h1>{e(report.title)}</h1>", *[f"<p>{e(t)}</p>" for t in report.intro]]
    if report.searches:
        body += [f"<h2>{e(SEARCH_TITLE)}</h2>", _html_table(report.searches, links=False)]
    for s in report.sections:
        body += _html_section(s, out)
    body.append("<h2>Trials that did not finish</h2>")
    if report.not_finished:
        body.append(_html_table(report.not_finished, links=True))
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
