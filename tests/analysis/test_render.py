"""The report as a reader opens it: the answer first (the summary of every primary comparison,
verdicts as badges), narrow tables, cells rendered by the kind of value they hold, the method
after the results, and the tables as CSV beside the page."""

from __future__ import annotations

import csv
import html
import io
import re

import pandas as pd

from ablab.analysis import cells, render, report, summary
from tests.analysis.test_report import smoothing_sweep, statistics, sweep, trial


def test_the_summary_leads_with_every_primary_comparison_and_its_verdict(tmp_path):
    made = report.build(smoothing_sweep(), tmp_path, n_resamples=1000, description="Does smoothing help?")
    (group,) = made.summary
    (arm,) = group.rows
    assert (group.group, group.metric, arm["arm"]) == ("no_label_smoothing", "BLEU", "no_label_smoothing")
    assert isinstance(arm["verdict"], cells.Badge) and arm["verdict"].kind == "differs"
    assert arm["verdict"] == "differs (lower)" and arm["Δ [simultaneous interval]"].startswith("−")
    assert len(arm["BLEU per seed"].split(", ")) == 3 and isinstance(arm["BLEU per seed"], cells.Number)
    assert made.baseline["arm"] == "baseline" and made.baseline["verdict"] == cells.MISSING
    assert len(render.SUMMARY_COLUMNS) <= 8
    assert made.config.startswith("Baseline: ") and "test set " in made.config

    page = render.to_html(made, tmp_path)
    summary, first_group, method = (
        page.index(s) for s in ('<table class="summary">', 'id="no_label', 'id="method"')
    )
    assert page.index("Does smoothing help?") < summary < first_group < method  # the answer, then the rest
    assert '<span class="b b-differs">differs (lower)</span>' in page
    assert "Primary metric: BLEU" in page[method:]  # the method text comes after the results
    assert "in MLflow experiment <code>" in page and "`" not in page  # markdown's code spans as HTML


def test_cells_are_rendered_by_the_kind_of_value_they_hold():
    assert (
        render.td(cells.Number("27.94 ± 0.33"))
        == '<td class="number"><span class="n">27.94 ± 0.33</span></td>'
    )
    assert render.td(cells.Badge("inconclusive", "inconclusive")).count('class="b b-inconclusive"') == 1
    assert (
        render.td("no_label_smoothing, seed 1")
        == '<td class="text">no_<wbr>label_<wbr>smoothing,<wbr> seed 1</td>'
    )
    assert render.td("27.94") == '<td class="text">27.94</td>'  # text that looks like a number stays text
    assert render.td("<b>") == '<td class="text">&lt;b&gt;</td>'
    assert render.prose("run `ab<1>` then `c`") == "run <code>ab&lt;1&gt;</code> then <code>c</code>"
    rows = [{"a": cells.Number("1"), "b": "x"}, {"a": cells.Number(cells.MISSING), "b": cells.Number("2")}]
    assert render.column_kind(rows, "a") == "number" and render.column_kind(rows, "b") == "text"
    badge = cells.Badge("differs (higher)", "differs")
    assert badge == "differs (higher)" and re.sub("x", "", badge) == "differs (higher)"


def test_the_group_table_keeps_to_eight_columns_and_the_rest_is_in_its_details(tmp_path):
    made = report.build(smoothing_sweep(), tmp_path, n_resamples=1000)
    page = render.to_html(made, tmp_path)
    section = page[page.index('<h2 id="no_label_smoothing">') :]
    main = section[section.index("<table") : section.index("</table>")]
    assert len(re.findall(r"<th[ >]", main)) <= 8 and "ECE" not in main and "MLflow" not in main
    details = section[section.index("<details><summary>Details") :]
    details = details[: details.index("</details>")]
    assert all(c in details for c in ("ECE", "PPL", "train min", "MLflow", "seed 1"))


def test_the_tables_are_written_as_csv_beside_the_page(tmp_path):
    rows = [trial("baseline", s) for s in (1, 2)] + [trial("no_label_smoothing", s, ls=0.0) for s in (1, 2)]
    made = report.build(sweep(rows), tmp_path, n_resamples=200)
    render.write(made, tmp_path)
    summary = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [r["arm"] for r in summary] == ["baseline", "no_label_smoothing"]
    assert summary[1]["group"] == "no_label_smoothing" and summary[1]["primary metric"] == "BLEU"
    comparisons = list(csv.DictReader(io.StringIO((tmp_path / "comparisons.csv").read_text())))
    assert {r["metric"] for r in comparisons} >= {"BLEU"} and all(r["group"] for r in comparisons)


def test_a_group_shows_the_first_test_sentences_as_each_setting_translated_them(tmp_path):
    runs = smoothing_sweep()
    said = [
        {"source": f"a dog {i}", "reference": f"ein Hund {i}", "hypothesis": f"Hund {i}"} for i in range(3)
    ]
    runs.samples = {
        "baseline-2": said,  # the lowest seed of each setting is shown
        "baseline-1": [{**s, "hypothesis": f"ein Hund {i}"} for i, s in enumerate(said)],
        "no_label_smoothing-1": [{**s, "hypothesis": "Katze | Maus"} for s in said],
    }
    made = report.build(runs, tmp_path, n_resamples=200)
    rows = made.sections[0].samples
    assert [r[""] for r in rows] == ["source", "reference", "baseline", "no_label_smoothing"]
    assert rows[0]["sentence 2"] == "a dog 1" and rows[2]["sentence 3"] == "ein Hund 2"
    assert "| Katze \\| Maus |" in render.to_markdown(made)  # a pipe in a translation stays in its cell
    assert '<table class="samples">' in render.to_html(made, tmp_path)


def test_an_architecture_group_reads_as_table_3_of_the_transformer_paper(tmp_path):
    shape = {"model.arch": "transformer", "model.d_model": 256, "model.ff_dim": 1024, "model.heads": 4}
    rows, curves = [], []
    for setting, layers, params, dev in (
        ("baseline", 3, 6e6, 21.0),
        ("layers=1", 1, 3.4e6, 17.5),
        ("layers=6", 6, 9.9e6, 22.0),
    ):
        for seed in (1, 2):
            group = {"group": "depth"} if setting != "baseline" else {}
            rows.append(
                trial(setting, seed, layers=layers, params=params, best_val_bleu=dev + seed, **shape, **group)
            )
            nll = (
                [5.0 - 0.1 * i for i in range(30)] if layers > 1 else [4.0] * 30
            )  # the last ten average 2.55 / 4
            curves += [
                {"run_id": f"{setting}-{seed}", "setting": setting, "seed": seed, "metric": "train/nll",
                 "step": 10 * i, "epoch": 1.0, "value": v}
                for i, v in enumerate(nll)
            ]  # fmt: skip
    rows.append(trial("seq2seq", 1, params=4e6, group="depth", **{**shape, "model.arch": "seq2seq"}))
    made = report.build(sweep(rows, curves=pd.DataFrame(curves)), tmp_path, groups=["depth"])
    (section,) = made.sections
    table = {r["setting"]: r for r in section.architecture}
    assert list(table) == ["baseline", "layers=1", "layers=6", "seq2seq"]
    base = table["baseline"]
    assert (base["N"], base["d_ff"], base["h"], base["params"]) == ("3", "1024", "4", "6.00 M")
    assert "d_model" not in base  # the same in every setting: left blank, as in the paper
    assert base["train NLL"] == "2.55" and table["layers=1"]["train NLL"] == "4.00"
    assert base["dev BLEU"] == "22.50" and "verdict" in base and "Δ BLEU [simultaneous interval]" in base
    assert (table["seq2seq"]["d_ff"], table["seq2seq"]["h"]) == (
        cells.MISSING,
        cells.MISSING,
    )  # a GRU has none
    page = render.to_html(made, tmp_path)
    section_html = page[page.index('<h2 id="depth">') :]
    assert "As Table 3 of Vaswani et al. (2017)" in section_html
    assert section_html.index('<th class="number">N</th>') < section_html.index("Finding.")


def test_the_configuration_line_reads_whole_numbers_as_integers_when_a_run_never_started():
    logged = {"model.arch": "transformer", "model.layers": 3, "model.heads": 4, "model.dropout": 0.1}
    logged |= {"schedule.warmup_steps": 200, "eval.beam_size": 4, "optim.lr": 7e-4, "data.vocab_size": 8000}
    trials = pd.DataFrame(
        [
            {"groups": ("baseline",), **logged},
            {"groups": ("baseline",), **{key: None for key in logged}},  # queued: no params logged
        ]
    )
    assert trials["model.layers"].dtype == float  # what pandas makes of the missing values
    line = summary.config_line(trials, "test_2016_flickr")
    assert line == (
        "Baseline: Transformer, 3 layers, 4 heads, dropout 0.1; lr 0.0007, warmup 200; BPE 8,000, beam 4; "
        "test set test_2016_flickr."
    )


def test_the_page_summary_names_a_shared_metric_once_and_a_self_named_group_gets_no_heading_row(tmp_path):
    runs = smoothing_sweep()
    heads = [trial(f"heads={h}", s, group="heads", **{"model.heads": h}) for h in (1, 8) for s in (1, 2, 3)]
    stats = {f"heads={h}-{s}": statistics(9, 20 + s) for h in (1, 8) for s in (1, 2, 3)}
    runs.trials = pd.concat([runs.trials, pd.DataFrame(heads)], ignore_index=True)
    runs.trials["model.heads"] = runs.trials["model.heads"].fillna(4)  # the others' heads: the baseline's
    runs.statistics |= stats
    made = report.build(runs, tmp_path, n_resamples=1000)
    page = render.to_html(made, tmp_path)
    table = page[page.index('<table class="summary">') : page.index("</table>")]
    assert "Summary: every comparison on BLEU, each group's primary metric" in html.unescape(page)
    assert table.count('<tr class="group">') == 1 and '<a href="#heads">heads</a>' in table
    assert table.count('<tr class="first">') == 2  # each group's first row, ruled off from the last
    assert "| heads (BLEU) | heads=1 |" in render.to_markdown(made)  # the markdown keeps its group column
