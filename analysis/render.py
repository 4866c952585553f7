"""The report rendered through templates (``templates/``, Jinja2): Markdown with the figures beside
it, one self-contained HTML page (figures embedded, so it opens offline and travels as one file),
and the report's tables as CSV beside them.

The first screen answers: the spec's question, the baseline's configuration, one table of every
primary comparison with its verdict as a badge, the budget, the contents; each group follows
(its settings table, finding, details, comparisons, figures); the method comes after the results.
A cell is rendered by its kind (:mod:`ablab.analysis.cells`), decided where its value was made."""

from __future__ import annotations

import base64
import csv
import html
import io
import re
import struct
from pathlib import Path

import jinja2
from markupsafe import Markup

from ablab.analysis import cells
from ablab.analysis.report import GroupSection, Report
from ablab.analysis.report_figures import ReportFigure
from ablab.analysis.settings_table import ARCHITECTURE_DETAILS, DETAILS
from ablab.analysis.summary import COLUMNS, SummaryGroup

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1400px;margin:1em auto;padding:0 1em;color:#222;"
    "line-height:1.4}h1{font-size:1.5em;margin:0.3em 0}h2{margin-top:1.6em}"
    "table{border-collapse:collapse;font-size:0.82em;margin:0.6em 0}"
    # the summary is the first screen's answer: a dozen arms fit in 768 px at 1024 px wide
    "table.summary{line-height:1.25}table.summary td,table.summary th{padding:2px 6px}"
    "table.summary tr.first td{border-top:2px solid #999}h2#summary{margin-top:0.8em}"
    "th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}th{background:#f3f3f3}"
    ".text{text-align:left}.number{text-align:right;white-space:nowrap}.badge{text-align:left}"
    ".n{white-space:nowrap}"  # a number, an interval, a value ± sd: never broken across lines
    "th.number{white-space:normal}"  # a long heading over short numbers takes two lines, not width
    ".b{display:inline-block;padding:1px 7px;border-radius:9px;font-weight:600}"
    # a verdict's two words stay on one line; a longer badge (test set only: p = ...) may wrap
    ".b-differs,.b-inconclusive{white-space:nowrap}"
    # a decided verdict is blue whichever its direction (green read as "better" beside a loss of BLEU)
    ".b-differs{background:#0550ae;color:#fff}.b-inconclusive{background:#e8e8e8;color:#333}"
    ".b-confounded{background:#d29922;color:#fff}.b-one-seed{background:#ddf4ff;color:#0a3069}"
    "tr.group th{text-align:left;background:#fafafa;font-weight:600}tr.reference td{background:#f6f8fa}"
    ".question{font-size:1.05em}.config,.legend,.intro{font-size:0.85em;color:#444;margin:0.3em 0}"
    "nav{font-size:0.85em;margin:0.6em 0}"
    "img{max-width:100%}figure{margin:1em 0 2em}figcaption{font-size:0.85em;color:#444;max-width:60em}"
    ".caption{font-size:0.85em;color:#444;margin-bottom:0}"
    ".finding{background:#f6f8fa;padding:0.6em;border-left:4px solid #4a7}"
    "details{margin:0.5em 0 1em}summary{cursor:pointer;font-weight:600}"
    # "monospace" twice: the text's size, not the browser's smaller default for monospace alone
    "code{font-family:ui-monospace,monospace,monospace;font-size:0.95em}"
    "details table{font-size:0.76em}details td,details th{padding:2px 4px}"
    "table.samples td{min-width:12em}"
)
FAMILIES = "the primary metric first; Holm-adjusted within its family over the whole report"
COMPARISONS_TITLE = f"Every comparison against the baseline ({FAMILIES})"
EFFECTS_TITLE = f"The design's main effects, interactions and, where one is real, simple effects ({FAMILIES})"
SEARCH_TITLE = "How each point's values were chosen"
SAME_TEST_SET_TITLE = (
    "Same test set: sacreBLEU's paired bootstrap, one p per seed (do two outputs differ on these "
    "sentences? not a verdict)"
)
DETAILS_TITLE = "Details: calibration, perplexity, training time and each seed's MLflow run"
POWER = ("seeds", "better in", "detects", "to resolve")
"""Columns of a comparison shown in a table of their own (the comparisons' table stays narrow)."""
POWER_TITLE = "Each comparison's seeds, paired effect size, and what it would take to decide"
SUMMARY_TITLE = "Summary: every comparison on its group's primary metric"
SUMMARY_TITLE_ONE_METRIC = "Summary: every comparison on {metric}, each group's primary metric"
ARCHITECTURE_TITLE = (
    "As Table 3 of Vaswani et al. (2017): those of N layers, d_model, d_ff and h heads that differ "
    "between the settings; train NLL per token at the end of training, dev BLEU the best validation "
    "(greedy), test PPL and BLEU over seeds."
)
LOOKS_TITLE = "How the seeds were spent: each comparison's looks, and why it stopped"
SAMPLES_TITLE = "Sample translations: the first test sentences, as each setting's lowest seed translated them"
SUMMARY_COLUMNS = (*COLUMNS, "still improving")
SUMMARY_LEGEND = (
    "Δ is the arm minus the baseline, seeds paired, with the simultaneous interval the verdict is "
    "read from (all of a family's comparisons at once); 'differs' where it excludes 0 by Holm's "
    "procedure, 'inconclusive' where it does not (more seeds would tell, see each group); "
    "'still improving': runs whose validation had not levelled off when their budget ended."
)
_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("ablab.analysis", "templates"),
    autoescape=jinja2.select_autoescape(["html.j2"]),
    trim_blocks=False,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def columns(rows: list[dict], hidden=()) -> list[str]:
    """A table's columns: those of its first row, without the runs' links and ``hidden``."""
    return [c for c in rows[0] if c != "runs" and c not in hidden] if rows else []


def column_kind(rows: list[dict], column: str) -> str:
    """``number`` where every value of the column is a number (or missing), else ``text``."""
    values = [r[column] for r in rows if r.get(column) != cells.MISSING]
    return "number" if values and all(isinstance(v, cells.Number) for v in values) else "text"


def td(value: object) -> Markup:
    """A table cell's HTML by the value's kind: a number right-aligned on one line, a verdict as
    a coloured badge, words free to break after underscores and commas (``no_label_<wbr>smoothing``)."""
    text = html.escape(str(value))
    kind = cells.kind(value)
    if kind == "number":
        return Markup(f'<td class="number"><span class="n">{text}</span></td>')
    if kind == "badge" and value != cells.MISSING:
        return Markup(f'<td class="badge"><span class="b b-{value.kind}">{text}</span></td>')
    breakable = re.sub(r"([_,])", r"\1<wbr>", text)
    return Markup(f'<td class="text">{breakable}</td>')


def run_links(runs: list[tuple[str, str, str | None]]) -> Markup:
    """Each run as a link to its MLflow page, or its id where the report has no links."""
    e = html.escape
    return Markup(
        " ".join(
            f'<a href="{e(url)}">{e(label)}</a>' if url else f"{e(label)} <code>{e(run_id[:8])}</code>"
            for label, run_id, url in runs
        )
    )


def prose(value: object) -> Markup:
    """A paragraph of the report as HTML: escaped, with the markdown twin's `code` spans as
    ``<code>`` (the HTML page showed their backticks)."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(value))))


def md(value: object) -> str:
    return str(value).replace("|", "\\|")


def md_links(runs: list[tuple[str, str, str | None]]) -> str:
    return " ".join(f"[{label}]({url})" if url else f"{label} `{run_id[:8]}`" for label, run_id, url in runs)


def detail_rows(rows: list[dict], details=DETAILS) -> list[dict]:
    """The settings rows' detail columns (with each setting's name and runs)."""
    return [
        {"setting": r["setting"], **{c: r[c] for c in details if c in r}, "runs": r["runs"]} for r in rows
    ]


def power_rows(rows: list[dict]) -> list[dict]:
    """The comparisons' :data:`POWER` columns, each row named by its setting (or effect) and metric."""
    named = ("setting", "effect", "metric")
    return [{c: r[c] for c in (*named, *POWER) if c in r} for r in rows]


def comparisons_title(s: GroupSection) -> str:
    return EFFECTS_TITLE if s.cell_tables else COMPARISONS_TITLE


def _environment(out: Path | None) -> jinja2.Environment:
    env = _ENVIRONMENT.overlay()
    env.filters |= {
        "columns": columns,
        "column_kind": column_kind,
        "td": td,
        "run_links": run_links,
        "md": md,
        "prose": prose,
        "md_links": md_links,
        "detail_rows": detail_rows,
        "power_rows": power_rows,
        "comparisons_title": comparisons_title,
        "summary_metric": summary_metric,
        "self_named": self_named,
        "image": lambda figure: _image(out, figure),
    }
    env.globals |= {
        "style": STYLE,
        "details": DETAILS,
        "architecture_details": ARCHITECTURE_DETAILS,
        "architecture_title": ARCHITECTURE_TITLE,
        "search_title": SEARCH_TITLE,
        "same_test_set_title": SAME_TEST_SET_TITLE,
        "details_title": DETAILS_TITLE,
        "power": POWER,
        "power_title": POWER_TITLE,
        "summary_title": SUMMARY_TITLE,
        "summary_title_one_metric": SUMMARY_TITLE_ONE_METRIC,
        "samples_title": SAMPLES_TITLE,
        "looks_title": LOOKS_TITLE,
        "summary_columns": SUMMARY_COLUMNS,
        "summary_legend": SUMMARY_LEGEND,
    }
    return env


def _image(out: Path, figure: ReportFigure) -> Markup:
    """The figure's ``<img>``: its PNG embedded, shown at half its pixel width (drawn at twice the
    resolution a page shows, sharp on high-resolution screens)."""
    png = (out / "figures" / f"{figure.name}.png").read_bytes()
    width = struct.unpack(">I", png[16:20])[0] // 2  # the IHDR chunk's width
    data = base64.b64encode(png).decode()
    alt = html.escape(figure.caption)
    return Markup(f'<img alt="{alt}" width="{width}" src="data:image/png;base64,{data}">')


def summary_metric(report: Report) -> str | None:
    """The primary metric of every group of the summary, where they share one (the page's summary
    then says it once, and a group named by its one arm needs no heading row of its own)."""
    metrics = {g.metric for g in report.summary}
    return metrics.pop() if len(metrics) == 1 else None


def self_named(group: SummaryGroup) -> bool:
    """A group of one arm of the group's own name (``no_warmup``): its heading would repeat the row."""
    return len(group.rows) == 1 and group.rows[0]["arm"] == group.group


def _summary_kinds(report: Report) -> dict[str, str]:
    rows = [r for g in report.summary for r in g.rows] + ([report.baseline] if report.baseline else [])
    return {c: column_kind(rows, c) for c in SUMMARY_COLUMNS}


def to_markdown(report: Report) -> str:
    return _environment(None).get_template("report.md.j2").render(report=report)


def to_html(report: Report, out: Path) -> str:
    """The report as one HTML page, figures embedded as base64 PNG."""
    template = _environment(out).get_template("report.html.j2")
    return template.render(report=report, summary_kinds=_summary_kinds(report))


def tables_csv(report: Report) -> dict[str, str]:
    """The report's data beside it: ``summary.csv`` (every primary comparison) and
    ``comparisons.csv`` (every comparison of every group, on every metric)."""
    summary = [{"group": "", **report.baseline}] if report.baseline else []
    summary += [{"group": g.group, "primary metric": g.metric, **r} for g in report.summary for r in g.rows]
    comparisons = [{"group": s.group, **r} for s in report.sections for r in s.comparisons]
    return {"summary.csv": _csv(summary), "comparisons.csv": _csv(comparisons)}


def _csv(rows: list[dict]) -> str:
    names = list(dict.fromkeys(c for r in rows for c in r if c != "runs"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, names, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write(report: Report, out: Path) -> tuple[Path, Path]:
    md_path, page = out / "report.md", out / "report.html"
    md_path.write_text(to_markdown(report))
    page.write_text(to_html(report, out))
    for name, text in tables_csv(report).items():
        (out / name).write_text(text)
    return md_path, page
