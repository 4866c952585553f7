"""The report from hand-built sweep tables with known answers."""

import pandas as pd
import pytest

from analysis import render, report
from analysis.load import SweepRuns, setting_of

REFS = [f"ein hund läuft über die wiese nummer {i} ." for i in range(40)]


def hyps(quality: int) -> list[str]:
    """Hypotheses that keep the first ``quality`` of 8 words of each reference."""
    return [" ".join(r.split()[:quality]) for r in REFS]


def trial(setting, seed, status="finished", bleu=20.0, ece=0.02, ls=0.1, layers=3, params=6e6, **extra):
    groups = ("baseline",) if setting == "baseline" else (extra.pop("group", "no_label_smoothing"),)
    return {
        "run_id": f"{setting}-{seed}",
        "trial": f"{setting},seed={seed}",
        "setting": setting,
        "groups": groups,
        "seed": seed,
        "status": status,
        "error": extra.pop("error", None),
        "bleu": bleu if status == "finished" else None,
        "bleu_lc": bleu,
        "chrf": 50.0,
        "ece": ece if status == "finished" else None,
        "params": params,
        "train_seconds": 120.0,
        "epochs_to_90pct": 2.0,
        "diverged_step": extra.pop("diverged_step", None),
        "loss.label_smoothing": ls,
        "model.layers": layers,
        "train.seed": seed,
        **extra,
    }


def sweep(rows, hypotheses=None) -> SweepRuns:
    trials = pd.DataFrame(rows)
    hypotheses = hypotheses or {}
    return SweepRuns(
        experiment="ablab/test",
        experiment_id="7",
        tracking_uri="sqlite:////x/mlflow.db",
        parent_run_id="parent",
        trials=trials,
        curves=pd.DataFrame(columns=["run_id", "setting", "seed", "metric", "step", "epoch", "value"]),
        bins=pd.DataFrame(
            [
                {
                    "run_id": r["run_id"],
                    "setting": r["setting"],
                    "seed": r["seed"],
                    "bin": b,
                    "lower": b / 2,
                    "upper": (b + 1) / 2,
                    "count": 5,
                    "confidence": 0.3 + b / 2,
                    "accuracy": 0.3 + b / 2,
                }
                for r in rows
                for b in range(2)
                if r["status"] == "finished"
            ]
        ),
        hypotheses=hypotheses,
        test_sets={k: "test_2016_flickr" for k in hypotheses},
    )


def test_setting_drops_the_seed():
    assert setting_of("heads=8,seed=1") == "heads=8" and setting_of("baseline,seed=12") == "baseline"


def test_label_smoothing_section_reports_ece_with_seeds_and_p_values(tmp_path):
    rows = [
        trial("baseline", 1, ece=0.020),
        trial("baseline", 2, ece=0.022),
        trial("baseline", 3, ece=0.021),
        trial("no_label_smoothing", 1, ece=0.058, ls=0.0),
        trial("no_label_smoothing", 2, ece=0.060, ls=0.0),
        trial("no_label_smoothing", 3, ece=0.056, ls=0.0),
    ]
    runs = sweep(
        rows,
        {
            f"{s}-{i}": hyps(8 if s == "baseline" else 5)
            for s in ("baseline", "no_label_smoothing")
            for i in (1, 2, 3)
        },
    )
    made = report.build(runs, tmp_path, references={"test_2016_flickr": REFS})
    (section,) = made.sections
    assert section.group == "no_label_smoothing"
    assert section.question == report.QUESTIONS["loss.label_smoothing"]
    assert section.changes == ["no_label_smoothing: loss.label_smoothing 0.1 → 0.0"]
    assert section.finding.startswith("no_label_smoothing raised ECE from 0.021 to 0.058 (3 seeds, p ")
    base, arm = section.rows
    assert base["setting"] == "baseline (reference)" and base["ECE"] == "0.021 ± 0.001" and base["n"] == "3/3"
    assert base["BLEU"] == "20.00 ± 0.00" and base["95 % CI"] == "± 0.00"
    assert arm["p (BLEU)"] == "p < 0.001"  # 5 of 8 words against all 8: a large, certain drop
    assert arm["p (ECE)"].startswith("p < 0.001") or arm["p (ECE)"].startswith("p = 0.00")
    assert arm["runs"][0] == ("seed 1", "http://127.0.0.1:5000/#/experiments/7/runs/no_label_smoothing-1")
    assert section.figures == ["no_label_smoothing_reliability"]
    assert (tmp_path / "figures" / "no_label_smoothing_reliability.png").stat().st_size > 1000
    assert (tmp_path / "figures" / "no_label_smoothing_reliability.svg").stat().st_size > 1000


def test_diverged_and_failed_trials_are_listed_with_their_reason(tmp_path):
    rows = [
        trial("baseline", 1),
        trial(
            "no_warmup",
            1,
            status="diverged",
            diverged_step=37,
            group="no_warmup",
            **{"schedule.warmup_steps": 0},
        ),
        trial("broken", 1, status="failed", error="DataError: train.de.gz: cannot read it", group="broken"),
    ]
    rows[0]["schedule.warmup_steps"] = 70
    rows[2]["schedule.warmup_steps"] = 70
    made = report.build(sweep(rows), tmp_path)
    assert [(r["trial"], r["status"], r["reason"]) for r in made.not_finished] == [
        ("no_warmup,seed=1", "diverged", "diverged at update 37"),
        ("broken,seed=1", "failed", "DataError: train.de.gz: cannot read it"),
    ]
    warmup = next(s for s in made.sections if s.group == "no_warmup")
    assert "1 of 1 no_warmup runs diverged (at update 37)" in warmup.finding
    assert (
        made.intro[0]
        == "3 trials in MLflow experiment `ablab/test`; 2 done (1 finished, 1 diverged), 1 not. Seeds: 1."
    )
    assert any("single seed" in line for line in made.intro)
    markdown = render.to_markdown(made)
    assert "| no_warmup,seed=1 | diverged | diverged at update 37 |" in markdown
    assert "## no_warmup" in markdown and "## Trials that did not finish" in markdown
    page = render.to_html(made, tmp_path)
    assert page.startswith("<!DOCTYPE html>") and "diverged at update 37" in page


def test_depth_section_plots_bleu_against_parameters(tmp_path):
    rows = [trial("baseline", 1, bleu=21.0)]
    rows += [trial(f"layers={n}", 1, bleu=15.0 + n, layers=n, params=2e6 * n, group="depth") for n in (1, 6)]
    made = report.build(sweep(rows), tmp_path, groups=["depth"])
    (section,) = made.sections
    assert section.figures == ["depth_bleu_vs_params", "depth_bleu_by_value"]
    assert "layers=1 lowered BLEU from 21.00 to 16.00 (1 seed, -)" in section.finding
    assert "layers=6 matched the baseline's BLEU of 21.00 (1 seed, -)" in section.finding
    page = render.to_html(made, tmp_path)
    assert page.count("data:image/png;base64,") == 2


def test_a_sweep_with_nothing_done_is_refused(tmp_path):
    runs = sweep([trial("baseline", 1, status="failed", error="boom")])
    with pytest.raises(report.NothingToReport, match="no trial of ablab/test has finished"):
        report.build(runs, tmp_path / "out")
    assert not (tmp_path / "out").exists()
