"""The report rendered: Markdown with the figures beside it, and one self-contained HTML page
(figures embedded as base64 PNG, so it opens offline and travels as one file)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from analysis.report import Report

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%}figure{margin:1em 0}"
    ".finding{background:#f6f8fa;padding:0.6em;border-left:4px solid #4a7}"
)


COLUMNS = (
    "setting",
    "n",
    "BLEU",
    "95 % CI",
    "p (BLEU)",
    "chrF",
    "ECE",
    "p (ECE)",
    "params",
    "train min",
    "epochs to 90 %",
)


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", *[f"{t}\n" for t in report.intro]]
    for s in report.sections:
        lines += [f"## {s.group}", "", f"**{s.question}**", ""]
        lines += [f"- {c}" for c in s.changes] + [""]
        lines += ["| " + " | ".join(COLUMNS) + " | MLflow |", "|" + "---|" * (len(COLUMNS) + 1)]
        for r in s.rows:
            links = " ".join(f"[{label}]({url})" for label, url in r["runs"])
            lines.append("| " + " | ".join(str(r[c]) for c in COLUMNS) + f" | {links} |")
        lines += ["", f"**Finding.** {s.finding}", ""]
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


def to_html(report: Report, out: Path) -> str:
    """The report as one HTML page, figures embedded as base64 PNG."""
    e = html.escape
    body = [f"<h1>{e(report.title)}</h1>", *[f"<p>{e(t)}</p>" for t in report.intro]]
    for s in report.sections:
        body += [f'<h2 id="{e(s.group)}">{e(s.group)}</h2>', f"<p><b>{e(s.question)}</b></p>"]
        body += ["<ul>", *[f"<li>{e(c)}</li>" for c in s.changes], "</ul>"]
        head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "<th>MLflow</th>"
        rows = [
            "<tr>"
            + "".join(f"<td>{e(str(r[c]))}</td>" for c in COLUMNS)
            + "<td>"
            + " ".join(f'<a href="{e(url)}">{e(label)}</a>' for label, url in r["runs"])
            + "</td></tr>"
            for r in s.rows
        ]
        body += [f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"]
        body += [f'<p class="finding"><b>Finding.</b> {e(s.finding)}</p>']
        for name in s.figures:
            data = base64.b64encode((out / "figures" / f"{name}.png").read_bytes()).decode()
            image = f'<img alt="{e(name)}" src="data:image/png;base64,{data}">'
            body.append(f"<figure>{image}<figcaption>{e(name)}</figcaption></figure>")
    body.append("<h2>Trials that did not finish</h2>")
    if report.not_finished:
        items = "".join(
            "<tr>"
            + "".join(f"<td>{e(r[k])}</td>" for k in ("trial", "status", "reason"))
            + f'<td><a href="{e(r["run"])}">run</a></td></tr>'
            for r in report.not_finished
        )
        head = "".join(f"<th>{c}</th>" for c in ("trial", "status", "reason", "MLflow"))
        body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{items}</tbody></table>")
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
