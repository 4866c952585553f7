"""Every committed report in results/ rebuilds from the runs export committed beside it, with the
verdict tables it shows (no MLflow, no runs beyond the export)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ablab.experiments.reporting import EXPORT, make_report

ROOT = Path(__file__).resolve().parents[2]
RESULTS, SPECS = ROOT / "results", ROOT / "experiments" / "specs"
PENDING = {  # committed before exports existed; rerun with the calibrated statistics, then exported
    "suite_cpu": "39 trials, 7-9 h on 2 cores: its rerun (in fp32, so any CPU carries it on) goes on "
    "across sessions; its runs/ holds the trials finished so far, which the next session imports "
    "(ablab import) and skips",
}


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


def test_every_committed_report_has_its_runs_export_or_is_pending():
    assert {name for name in committed() if not (RESULTS / name / EXPORT).is_dir()} <= set(PENDING)
    assert set(PENDING) <= set(committed())  # a rerun that has landed is no longer pending


@pytest.mark.parametrize("name", [name for name in committed() if name not in PENDING])
def test_a_committed_report_rebuilds_from_its_export(name, tmp_path):
    made = make_report(str(SPECS / f"{name}.yaml"), "", tmp_path, source=RESULTS / name / EXPORT)
    rebuilt, committed_tables = (
        verdict_tables(p.read_text()) for p in (made.markdown, RESULTS / name / "report.md")
    )
    assert committed_tables and rebuilt == committed_tables


QUOTED_FROM_ELSEWHERE = {  # (report, number): where a figure its README section quotes comes from
    ("de_en_files", "27.94"): "the English-to-German baseline of suite_cpu/, compared with",
    ("optimizers", "0.9"): "SGD's momentum, a setting of the spec",
    ("optimizers", "0.0008"): "a p-value of the statistics before the calibrated test, same runs",
    ("optimizers", "0.001"): "a p-value of the statistics before the calibrated test, same runs",
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


@pytest.mark.parametrize("name", [name for name in committed() if name not in PENDING])
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
