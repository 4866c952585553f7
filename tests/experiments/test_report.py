"""ablab report end to end: the smoke sweep with the HTML checked in headless Chromium, and a real
A/A sweep (an arm that cannot matter) whose verdicts must all be inconclusive."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess

import matplotlib.image
import pytest
import yaml
from mlflow import MlflowClient

from tests.experiments.conftest import SMOKE, ablab
from tests.experiments.helpers import TINY

pytestmark = pytest.mark.integration

CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.images = images.length;
  document.body.dataset.broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
});
</script></body>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed: make test installs Debian's chromium package"
    return found


def headless(*args: str) -> subprocess.CompletedProcess:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def smoke_report(smoke):
    folder, uri, out, _ = smoke
    assert out.returncode == 0, out.stderr[-3000:]
    made = ablab("report", SMOKE, "--out", folder / "report", cwd=folder)
    return folder / "report", uri, made


def test_the_report_lists_every_trial_and_writes_every_figure(smoke_report):
    out, uri, made = smoke_report
    assert made.returncode == 0, made.stderr[-3000:]
    markdown = (out / "report.md").read_text()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ablab/smoke")
    trials = client.search_runs([experiment.experiment_id], "tags.`ablab.kind` = 'trial'")
    assert len(trials) == 5
    for run in trials:  # every trial is a row with a link to its run
        assert f"/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}" in markdown
    for group in ("no_warmup", "no_label_smoothing", "heads", "seq2seq"):
        assert f"## {group}" in markdown
    assert markdown.count("**Finding.**") == 4
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", markdown)
    expected = {
        "no_label_smoothing_reliability",
        "seq2seq_attention",
        "seq2seq_bleu_vs_params",
        "heads_bleu_by_value",
    }
    assert expected <= {f.removeprefix("figures/").removesuffix(".png") for f in figures}
    for figure in figures:
        png = out / figure
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert png.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    parent = client.search_runs([experiment.experiment_id], "tags.`ablab.kind` = 'sweep'")[0]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/figures"} <= logged


def test_the_html_renders_in_headless_chromium_with_its_figures(smoke_report, tmp_path):
    out, _, made = smoke_report
    assert made.returncode == 0, made.stderr[-3000:]
    page = (out / "report.html").read_text()
    assert 'src="figures/' not in page  # self-contained: every image is embedded
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECK_IMAGES))
    dom = headless("--virtual-time-budget=10000", "--dump-dom", checked.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    images = re.search(r'data-images="(\d+)"', dom.stdout)
    broken = re.search(r'data-broken="(\d+)"', dom.stdout)
    assert images and broken, dom.stdout[:2000]
    assert int(images.group(1)) == page.count("<img ") >= 4 and broken.group(1) == "0"

    shot = tmp_path / "shot.png"
    result = headless("--window-size=1200,2400", f"--screenshot={shot}", (out / "report.html").as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not blank: text, tables and figures
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.02  # a real share of the page is drawn on


def test_an_arm_that_cannot_matter_comes_out_inconclusive(tmp_path):
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
    ran = ablab("run", spec, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    made = ablab("report", spec, "--out", tmp_path / "report", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    markdown = (tmp_path / "report" / "report.md").read_text()
    rows = [line.split(" | ") for line in markdown.splitlines() if line.startswith("| one_token_less | ")]
    verdicts = {row[1]: row[8] for row in rows if len(row) > 8 and row[1] in METRIC_LABELS}  # metric: verdict
    assert set(verdicts) == METRIC_LABELS and set(verdicts.values()) == {"inconclusive"}, verdicts
    assert "Holm–Bonferroni adjusts all 5 comparisons" in markdown
    assert "one_token_less: seeds to resolve each inconclusive comparison" in made.stdout


METRIC_LABELS = {"BLEU", "BLEU (lowercased)", "chrF", "ECE", "test NLL"}
