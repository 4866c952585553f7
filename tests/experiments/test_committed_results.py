"""Every committed report in results/ rebuilds from the runs export committed beside it, with the
verdict tables it shows (no MLflow, no runs beyond the export)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ablab.experiments.reporting import EXPORT, make_report
from tests.browser import LAYOUT, browser

ROOT = Path(__file__).resolve().parents[2]
RESULTS, SPECS = ROOT / "results", ROOT / "experiments" / "specs"


def committed() -> list[str]:
    return sorted(p.parent.name for p in RESULTS.glob("*/report.md"))


def verdict_tables(markdown: str) -> list[list[list[str]]]:
    """Every table of a report with a 'verdict' column, as rows of cells."""
    tables, current = [], None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if current is None:
            current = [cells]
            if "verdict" in cells:
                tables.append(current)
        elif not set(line) <= set("|-"):
            current.append(cells)
    return tables


def test_every_committed_report_has_its_runs_export():
    assert committed() and [name for name in committed() if not (RESULTS / name / EXPORT).is_dir()] == []


@pytest.mark.parametrize("name", committed())
def test_a_committed_report_rebuilds_from_its_export_and_answers_on_a_laptop_s_first_screen(name, tmp_path):
    """The verdict tables equal the committed ones; in Chromium at 1024×768 nothing is wider than
    the window, no number or verdict badge is broken over two lines, and every summary verdict
    is on the first screen (a real report's dozen arms, not a test's two)."""
    made = make_report(str(SPECS / f"{name}.yaml"), "", tmp_path, source=RESULTS / name / EXPORT)
    rebuilt, committed_tables = (
        verdict_tables(p.read_text()) for p in (made.markdown, RESULTS / name / "report.md")
    )
    assert committed_tables and rebuilt == committed_tables
    with browser() as chromium:
        page = chromium.new_page(viewport={"width": 1024, "height": 768})
        page.goto(made.html.as_uri())
        page.wait_for_load_state("load")
        seen = page.evaluate(LAYOUT)
    assert seen["page"] <= seen["width"] and max(seen["tables"]) <= seen["width"], seen
    assert seen["wrapped"] == [], seen
    heights = [b["height"] for b in seen["badges"]]
    assert heights and max(heights) < 1.5 * min(heights), seen  # every badge on one line
    assert max(b["bottom"] for b in seen["badges"]) <= seen["first_screen"], seen


BEFORE = "a p-value of the statistics before the calibrated test, same runs"
QUOTED_FROM_ELSEWHERE = {  # (report, number): where a figure its README section quotes comes from
    ("de_en_files", "27.87"): "the English-to-German baseline of suite_cpu/, compared with",
    ("optimizers", "0.9"): "SGD's momentum, a setting of the spec",
    ("optimizers", "0.0008"): BEFORE,
    ("optimizers", "0.001"): BEFORE,
    ("suite_cpu", "5.6"): BEFORE,
    ("suite_cpu", "8.4"): BEFORE,
    ("suite_cpu", "4.4"): BEFORE,
    ("suite_cpu", "9.2"): BEFORE,
    ("suite_cpu", "7.1"): BEFORE,
    ("suite_cpu", "28.14"): "the spec's learning curve (its comments): seed 1 at 1,000 updates",
    ("suite_cpu", "32.43"): "the spec's learning curve (its comments): seed 1 at 1,600 updates",
    ("suite_cpu", "4.67"): "Vaswani et al. 2017, Table 3 row D: perplexity without label smoothing",
    ("suite_cpu", "4.92"): "Vaswani et al. 2017, Table 3: the base model's perplexity",
    ("suite_cpu", "0.9"): "Vaswani et al. 2017, Table 3 rows A: one head below the best",
    ("suite_cpu", "23.7"): "Vaswani et al. 2017, Table 3 rows C: BLEU of 2 layers",
}
DECIMAL = re.compile(r"(?<![\w.])[−+]?\d[\d,]*\.\d+(?!\d)")


def readme_sections() -> dict[str, str]:
    """results/README.md's prose (code blocks left out) by the report each section is about."""
    text = (RESULTS / "README.md").read_text()
    sections = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        if found := re.match(r"`([a-z_]+)/`", part):
            sections[found.group(1)] = re.sub(r"```.*?```", "", part, flags=re.S)
    return sections


@pytest.mark.parametrize("name", committed())
def test_every_figure_the_results_readme_quotes_is_in_its_report(name):
    """A number with decimals in a report's README section is in that report (or said where it
    comes from): the README repeats the report, it does not type new figures."""
    report = (RESULTS / name / "report.md").read_text()

    def in_report(number: str) -> bool:
        digits = re.escape(number.lstrip("+−"))
        return re.search(rf"(?<![\d.]){digits}(?!\d)", report) is not None

    quoted = list(dict.fromkeys(DECIMAL.findall(readme_sections()[name])))
    assert len(quoted) > 5
    assert [n for n in quoted if not in_report(n) and (name, n) not in QUOTED_FROM_ELSEWHERE] == []
