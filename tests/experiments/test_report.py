"""ablab report end to end: the smoke sweep with the HTML checked in headless Chromium, and a real
A/A sweep (an arm that cannot matter) whose verdicts must all be inconclusive."""

from __future__ import annotations

import copy
import re

import matplotlib.image
import pytest
import yaml
from mlflow import MlflowClient

from ablab.trainer.tracking import record
from tests.browser import LAYOUT, browser
from tests.experiments.conftest import ablab
from tests.experiments.helpers import TINY, free_port, start_ablab, stop, wait_healthy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smoke_report(smoke):
    folder, uri, out, _, spec = smoke
    assert out.returncode == 0, out.stderr[-3000:]
    made = ablab("report", spec, "--out", folder / "report", cwd=folder)
    return folder / "report", uri, made


def test_the_report_lists_every_trial_and_writes_every_figure(smoke_report):
    out, uri, made = smoke_report
    assert made.returncode == 0, made.stderr[-3000:]
    markdown = (out / "report.md").read_text()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ablab/smoke")
    trials = client.search_runs([experiment.experiment_id], "tags.`ablab.kind` = 'trial'")
    assert len(trials) == 6
    for run in trials:  # every trial is a row with a link to its run
        assert f"/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}" in markdown
    for group in ("no_label_smoothing", "seq2seq", "heads_norm"):
        assert f"## {group}" in markdown
    assert markdown.count("**Finding.**") == 3
    assert markdown.count("*Sample translations:") == 3  # each group's, from the runs' samples.txt
    assert "| source |" in markdown and "| reference |" in markdown
    # the crossed group as a design: its table, its effects (one seed: test set only), its plot
    assert "A 2 × 2 factorial design: model.heads (1, 4) × model.norm (post, pre); 4 cells" in markdown
    assert "| model.heads | model.norm = post | model.norm = pre |" in markdown
    assert "model.norm post → pre × model.heads 4 → 1" in markdown and "test set only: p" in markdown
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", markdown)
    expected = {
        "no_label_smoothing_reliability",
        "seq2seq_attention",
        "heads_norm_interaction",
    }
    drawn = {f.removeprefix("figures/").removesuffix(".png") for f in figures}
    assert (
        expected <= drawn and "seq2seq_bleu_vs_params" not in drawn
    )  # two points say nothing a table does not
    for figure in figures:
        png = out / figure
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert png.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    assert "text in figure" not in made.stderr  # no label of any figure overlaps another or escapes
    parent = client.search_runs([experiment.experiment_id], "tags.`ablab.kind` = 'sweep'")[0]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/figures"} <= logged
    # MLflow, one home for the record: descriptions, the model-training view, figures on each run
    assert experiment.tags[record.EXPERIMENT_KIND] == record.MODEL_TRAINING
    note = experiment.tags[record.NOTE]
    assert (
        note.startswith("Small smoke sweep")
        and "- **heads_norm**: How do the number of attention heads and layer-norm" in note
    )
    report_page = f"/runs/{parent.info.run_id}/artifacts/report/report.html?workflowType=machine_learning"
    assert report_page in note and report_page in client.get_run(parent.info.run_id).data.tags[record.NOTE]
    for run in trials:
        drawn = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
        assert {"figures/training_curves.png", "figures/reliability.png", "figures/attention.png"} <= drawn


@pytest.mark.parametrize("width, height", [(1024, 768), (1440, 900)])
def test_the_html_reads_in_a_browser_at_laptop_widths(smoke_report, width, height, tmp_path):
    out, _, made = smoke_report
    assert made.returncode == 0, made.stderr[-3000:]
    page_text = (out / "report.html").read_text()
    assert 'src="figures/' not in page_text  # self-contained: every image is embedded
    with browser() as chromium:
        page = chromium.new_page(viewport={"width": width, "height": height})
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        seen = page.evaluate(LAYOUT)
        page.screenshot(path=str(tmp_path / "shot.png"))
    assert seen["images"] == page_text.count("<img ") >= 6 and seen["broken"] == [], seen
    assert seen["page"] <= seen["width"] and max(seen["tables"]) <= seen["width"], seen  # nothing overflows
    assert seen["wrapped"] == [], seen  # no number broken across lines
    assert seen["summary"] < seen["badge"] <= seen["first_screen"], seen  # the answer on the first screen
    pixels = matplotlib.image.imread(tmp_path / "shot.png")[..., :3]
    assert pixels.std() > 0.05 and (pixels.mean(axis=2) < 0.9).mean() > 0.02  # drawn on, not blank


def test_a_run_link_of_the_report_opens_the_run_in_the_mlflow_ui(smoke, smoke_report):
    """ablab ui (a real MLflow server on 127.0.0.1) and the page a report link opens, in Chromium:
    the run's name, its BLEU, a figure among its artifacts, and its system metrics charted."""
    folder, uri, _, _, _ = smoke
    out, _, made = smoke_report
    assert made.returncode == 0, made.stderr[-3000:]
    link = re.search(
        r"\[seed 1\]\((http://127\.0\.0\.1:5000/[^)]+)\)", (out / "report.md").read_text()
    ).group(1)
    assert link.endswith("?workflowType=machine_learning")  # opens the model-training view
    run = MlflowClient(uri).get_run(re.search(r"/runs/([0-9a-f]+)", link).group(1))
    bleu = run.data.metrics[f"test/{run.data.tags[record.TEST_SET]}/bleu"]
    port = free_port()
    ui = start_ablab(folder, "ui", "--port", str(port))
    try:
        wait_healthy(f"http://127.0.0.1:{port}", "ablab ui")
        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(link.replace(":5000/", f":{port}/"))
            page.get_by_text("test/test_2016_flickr/bleu").first.wait_for(timeout=60_000)
            body = page.inner_text("body")
            assert run.info.run_name in body and repr(bleu)[:8] in body and "Model training" in body
            page.get_by_text("Artifacts", exact=True).first.click()
            page.get_by_text("figures", exact=True).first.click()
            page.get_by_text("training_curves.png", exact=True).first.click()
            page.wait_for_function(
                "[...document.images].some(i => i.src.startsWith('blob:') && i.naturalWidth > 400)",
                timeout=30_000,
            )
            page.get_by_text("System metrics", exact=True).first.click()  # the trial's own use, charted
            page.get_by_text("process_cpu_percentage").first.wait_for(timeout=60_000)
            assert "cpu_utilization_percentage" in page.inner_text("body")
    finally:
        stop(ui)


def test_an_arm_that_cannot_matter_comes_out_inconclusive(tmp_path, shared_ray):
    """A/A: the batch budget one token smaller changes which sentences share a batch, so every
    trial trains differently, but nothing in expectation. With 3 seeds, every metric must come
    out inconclusive, whatever the seeds did."""
    config = copy.deepcopy(TINY)
    config["eval"]["test_sentences"] = 100
    spec = tmp_path / "aa.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "baseline": {"config": config},
                "ablations": {"one_token_less": {"data.max_tokens": TINY["data"]["max_tokens"] - 1}},
                "seeds": [1, 2, 3],
                "resources": {"cpus": 1},
            }
        )
    )
    ran = ablab("run", spec, cwd=tmp_path, ray=shared_ray)
    assert ran.returncode == 0, ran.stderr[-3000:]
    made = ablab("report", spec, "--out", tmp_path / "report", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    markdown = (tmp_path / "report" / "report.md").read_text()
    verdicts = {row["metric"]: row["verdict"] for row in comparison_rows(markdown)}
    assert set(verdicts) == METRIC_LABELS and set(verdicts.values()) == {"inconclusive"}, verdicts
    assert "on the primary metric together (1 of them), and the secondary ones (3," in markdown
    assert "one_token_less: seeds to resolve each inconclusive comparison" in made.stdout


METRIC_LABELS = {"BLEU", "chrF (secondary)", "ECE (secondary)", "test NLL (secondary)"}


def comparison_rows(markdown: str) -> list[dict[str, str]]:
    """The rows of every comparisons table of a report, as column -> cell."""
    rows, header = [], None
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells and cells[:2] == ["setting", "metric"] and "verdict" in cells:
            header = cells
        elif cells and header and not set(line) <= set("|-"):
            rows.append(dict(zip(header, cells, strict=False)))
        elif not cells:
            header = None
    return rows


def test_a_report_rebuilds_from_its_runs_export_without_mlflow(smoke, smoke_report, tmp_path):
    folder, _, _, _, spec = smoke
    first = ablab("report", spec, "--out", tmp_path / "a", "--no-links", "--export", cwd=folder)
    assert first.returncode == 0, first.stderr[-3000:]
    assert not list((tmp_path / "a" / "runs").rglob("*.pt"))  # no checkpoints
    elsewhere = tmp_path / "elsewhere"  # no store here: the export is all it reads
    elsewhere.mkdir()
    again = ablab("report", spec, "--from", tmp_path / "a" / "runs", "--out", tmp_path / "b", cwd=elsewhere)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not (elsewhere / "mlruns").exists()
    before, after = ((tmp_path / side / "report.md").read_text() for side in "ab")
    assert comparison_rows(after) == comparison_rows(before) and comparison_rows(before)
    assert re.search(r"Made by ablab \S+, commit [0-9a-f]{40}", after)
    wrong = ablab("report", spec, "--from", tmp_path / "a", "--out", tmp_path / "c", cwd=elsewhere)
    assert wrong.returncode == 2 and "runs.json.gz" in wrong.stderr and not (tmp_path / "c").exists()
