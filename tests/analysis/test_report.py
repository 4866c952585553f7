"""The report from hand-built sweep tables with known answers."""

import numpy as np
import pandas as pd
import pytest
import sacrebleu
from scipy import stats as scipy_stats

from ablab.analysis import questions, render, report, verdicts
from ablab.analysis.load import SweepRuns
from ablab.trainer.tracking.record import setting_of

REFS = [f"ein hund läuft über die wiese nummer {i} ." for i in range(40)]


def hyps(quality: int, seed: int = 0) -> list[str]:
    """Hypotheses that keep the first ``quality`` of 9 words of each reference, and a random few
    of them one word fewer (the seed's own noise)."""
    rng = np.random.default_rng(seed)
    return [" ".join(r.split()[: quality - (rng.uniform() < 0.3)]) for r in REFS]


def statistics(quality: int, seed: int) -> dict:
    out = hyps(quality, seed)
    return {
        "bleu": np.array(sacrebleu.BLEU()._extract_corpus_statistics(out, [REFS]), dtype=float),
        "chrf": np.array(sacrebleu.CHRF()._extract_corpus_statistics(out, [REFS]), dtype=float),
    }


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
        "bleu_lc": bleu if status == "finished" else None,
        "chrf": 50.0,
        "ece": ece if status == "finished" else None,
        "test_nll": extra.pop("test_nll", 2.0),
        "params": params,
        "train_seconds": 120.0,
        "epochs_to_90pct": 2.0,
        "steps": 348,
        "epochs": 4.0,
        "diverged_step": extra.pop("diverged_step", None),
        "loss.label_smoothing": ls,
        "model.layers": layers,
        "train.seed": seed,
        **extra,
    }


def sweep(rows, stats=None, curves=None) -> SweepRuns:
    return SweepRuns(
        experiment="ablab/test",
        experiment_id="7",
        tracking_uri="sqlite:////x/mlflow.db",
        parent_run_id="parent",
        trials=pd.DataFrame(rows),
        curves=curves
        if curves is not None
        else pd.DataFrame(columns=["run_id", "setting", "seed", "metric", "step", "epoch", "value"]),
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
        statistics=stats or {},
        test_sets={k: "test_2016_flickr" for k in stats or {}},
    )


def smoothing_sweep(arm_quality=6, arm_ece=(0.058, 0.060, 0.056)):
    rows = [trial("baseline", s, ece=e) for s, e in zip((1, 2, 3), (0.020, 0.022, 0.021), strict=True)]
    rows += [trial("no_label_smoothing", s, ece=e, ls=0.0) for s, e in zip((1, 2, 3), arm_ece, strict=True)]
    stats = {f"baseline-{s}": statistics(9, s) for s in (1, 2, 3)}
    stats |= {f"no_label_smoothing-{s}": statistics(arm_quality, 10 + s) for s in (1, 2, 3)}
    return sweep(rows, stats)


def test_setting_drops_the_seed():
    assert setting_of("heads=8,seed=1") == "heads=8" and setting_of("baseline,seed=12") == "baseline"


def test_a_large_consistent_effect_differs_and_the_table_says_so(tmp_path):
    made = report.build(smoothing_sweep(), tmp_path, n_resamples=1000)
    (section,) = made.sections
    assert section.group == "no_label_smoothing"
    assert section.question == questions.QUESTIONS["loss.label_smoothing"]
    assert section.changes == ["no_label_smoothing: loss.label_smoothing 0.1 → 0.0"]
    base, arm = section.rows
    assert base["setting"] == "baseline" and base["changed"] == "(reference)" and base["seeds"] == "3/3"
    assert base["ECE"] == "0.021 ± 0.001" and base["Δ BLEU [simultaneous interval]"] == "-"
    assert arm["changed"] == "loss.label_smoothing 0.1 → 0.0" and arm["verdict"] == "differs (lower)"
    page = "http://127.0.0.1:5000/#/experiments/7/runs/no_label_smoothing-1?workflowType=machine_learning"
    assert arm["runs"][0] == ("seed 1", "no_label_smoothing-1", page)
    by_metric = {row["metric"]: row for row in section.comparisons}
    assert set(by_metric) == {"BLEU", "chrF (secondary)", "ECE (secondary)", "test NLL (secondary)"}
    # seed level only (no per-sentence statistics): t with 2 df, yet +0.037 against a seed sd of 0.002
    paired_t = scipy_stats.ttest_rel([0.058, 0.060, 0.056], [0.020, 0.022, 0.021]).pvalue
    ece = by_metric["ECE (secondary)"]
    assert ece["verdict"] == "differs (higher)"
    assert ece["p (Holm)"].startswith(f"{paired_t:.1e} (")
    assert by_metric["test NLL (secondary)"]["verdict"] == "inconclusive"  # identical logged NLL
    assert by_metric["test NLL (secondary)"]["baseline → arm"] == "2.000 → 2.000"
    assert "same test set" not in by_metric["BLEU"]  # a diagnostic, in a table of its own:
    assert [(r["metric"], r["p per seed"].count("seed ")) for r in section.same_test_set] == [
        ("BLEU", 3),
        ("chrF", 3),
    ]
    assert by_metric["BLEU"]["seeds"] == "3" and by_metric["BLEU"]["better in"] == "0/3 seeds"
    assert "ECE" not in {r["metric"] for r in section.same_test_set}  # no per-sentence statistics
    # the finding is the primary metric's (BLEU by default), from its verdict
    assert section.finding.startswith("no_label_smoothing lowered BLEU:") and "Holm p" in section.finding
    assert "ECE" not in section.finding
    assert section.to_resolve == ["no_label_smoothing on test NLL: no effect to detect"]  # identical logs
    intro = " ".join(made.method)
    assert "Primary metric: BLEU; secondary: chrF, ECE, test NLL." in intro
    assert "on the primary metric together (1 of them), and the secondary ones (3," in intro
    assert [f.name for f in section.figures] == ["no_label_smoothing_reliability"]
    assert (tmp_path / "figures" / "no_label_smoothing_reliability.png").stat().st_size > 1000


def test_a_group_s_primary_metric_leads_its_table_and_finding_and_has_its_own_holm_family(tmp_path):
    runs = smoothing_sweep()
    texts = {"no_label_smoothing": report.GroupText(primary="ece")}
    made = report.build(runs, tmp_path, n_resamples=1000, texts=texts)
    (section,) = made.sections
    assert section.rows[1]["Δ ECE [simultaneous interval]"].startswith("+0.0370")
    assert "Δ BLEU [simultaneous interval]" not in section.rows[1]
    assert section.finding.startswith("no_label_smoothing raised ECE: 0.0210 → 0.0580")
    by_metric = {row["metric"]: row for row in section.comparisons}
    assert set(by_metric) == {"ECE", "BLEU (secondary)", "chrF (secondary)", "test NLL (secondary)"}
    assert "Primary metric: ECE; secondary: BLEU, chrF, test NLL." in " ".join(made.method)
    # each family is adjusted on its own: ECE alone is not adjusted; the secondary p's by Holm over 3
    evidence = verdicts.gather(runs, runs.trials, 1000)
    judged = verdicts.judge(evidence, primary={"no_label_smoothing": "ece"})
    primary = [v for v in judged.values() if v.family_name == verdicts.PRIMARY]
    secondary = [v for v in judged.values() if v.family_name == verdicts.SECONDARY]
    assert [v.comparison.metric for v in primary] == ["ece"] and primary[0].family == 1
    assert primary[0].p_adjusted == primary[0].comparison.p
    assert {v.comparison.metric for v in secondary} == {"bleu", "chrf", "test_nll"}
    expected = verdicts.holm([v.comparison.p for v in secondary])
    assert [v.p_adjusted for v in secondary] == pytest.approx(list(expected))
    assert all(v.family == 3 for v in secondary)


def test_a_seed_left_out_of_the_pairs_is_counted_and_named_and_the_effect_size_is_paired(tmp_path):
    runs = smoothing_sweep()
    trials = runs.trials.copy()
    diverged = trials["run_id"] == "no_label_smoothing-2"
    trials.loc[diverged, ["status", "bleu", "bleu_lc", "ece"]] = ["diverged", None, None, None]
    stats = {k: v for k, v in runs.statistics.items() if k != "no_label_smoothing-2"}
    made = report.build(sweep(trials.to_dict("records"), stats), tmp_path, n_resamples=500)
    (section,) = made.sections
    bleu = next(row for row in section.comparisons if row["metric"] == "BLEU")
    assert bleu["seeds"] == "2 (seed 2: no_label_smoothing diverged)"
    assert bleu["better in"] == "0/2 seeds"  # the arm kept fewer words in both paired seeds
    assert "2 seeds (seed 2 left out: no_label_smoothing diverged)" in section.finding


def test_lowercased_bleu_is_compared_only_where_it_is_the_primary_metric(tmp_path):
    evidence = verdicts.gather(smoothing_sweep(), smoothing_sweep().trials, 200)
    assert "bleu_lc" not in {m for _, m in verdicts.judge(evidence)}
    judged = verdicts.judge(evidence, primary={"no_label_smoothing": "bleu_lc"})
    assert judged[("no_label_smoothing", "bleu_lc")].family_name == verdicts.PRIMARY
    assert judged[("no_label_smoothing", "bleu")].family_name == verdicts.SECONDARY


def test_an_arm_like_the_baseline_is_inconclusive_on_every_metric(tmp_path):
    runs = smoothing_sweep(arm_quality=9, arm_ece=(0.021, 0.020, 0.022))
    made = report.build(runs, tmp_path, n_resamples=500)
    verdicts = {row["metric"]: row["verdict"] for row in made.sections[0].comparisons}
    assert set(verdicts.values()) == {"inconclusive"}, verdicts


def test_one_seed_gives_no_verdict_across_training_runs(tmp_path):
    rows = [trial("baseline", 1), trial("no_label_smoothing", 1, ls=0.0)]
    stats = {"baseline-1": statistics(9, 1), "no_label_smoothing-1": statistics(5, 2)}
    made = report.build(sweep(rows, stats), tmp_path, n_resamples=1000)
    verdict = made.sections[0].rows[1]["verdict"]
    assert verdict.startswith("test set only: p ≤ 1/1,001")
    assert "covers test-set variation only" in made.sections[0].finding
    assert any("one seed" in line for line in made.method)
    assert {row["better in"] for row in made.sections[0].comparisons} == {"-"}  # one pair of runs: no share


def test_runs_still_improving_are_counted_and_a_mostly_flagged_group_says_it(tmp_path):
    rows = [trial("baseline", 1), trial("layers=1", 1, layers=1, group="depth")]
    curves = [  # the baseline still rising, layers=1 past its best with a rising loss
        {
            "run_id": run,
            "setting": run[:-2],
            "seed": 1,
            "metric": metric,
            "step": 87 * e,
            "epoch": e,
            "value": v,
        }
        for run, bleu, loss in (
            ("baseline-1", [5, 9, 12, 14], [5, 4, 3.5, 3.2]),
            ("layers=1-1", [5, 9, 8, 7], [4, 4.1, 4.2, 4.3]),
        )
        for e in range(1, 5)
        for metric, v in (("val/bleu", bleu[e - 1]), ("val/loss", loss[e - 1]))
    ]
    made = report.build(sweep(rows, curves=pd.DataFrame(curves)), tmp_path, groups=["depth"])
    assert made.intro[1].startswith("Budget: 348 updates (4.0 epochs) per trial; 1 of 2 finished trials were")
    base, arm = made.sections[0].rows
    assert base["still improving"] == "1/1" and arm["still improving"] == "0/1"
    assert "budget" not in made.sections[0].finding  # half, not most


def test_the_compute_line_sums_every_run_s_clocks_and_the_wall_time_they_trained_in(tmp_path):
    clocks = {"setup_seconds": 6.0, "wall_seconds": 600.0, "eval_seconds": 54.0}  # train_seconds 120 each
    rows = [
        trial("baseline", 1, **clocks),
        trial("no_label_smoothing", 1, **clocks),
        trial("no_label_smoothing", 2, status="diverged", **{**clocks, "eval_seconds": None}),
        trial("no_label_smoothing", 3, status="failed", error="killed"),  # no clocks
    ]
    logged = {  # seconds at which each run logged: the baseline paused an hour in its middle
        "baseline-1": [*range(0, 1001, 100), *range(4600, 5001, 100)],
        "no_label_smoothing-1": list(range(500, 1501, 50)),  # overlaps the baseline's first span
        "no_label_smoothing-2": [4700, 4750],  # inside the baseline's second span
    }
    curves = pd.DataFrame(
        [
            {"run_id": run, "setting": run[:-2], "seed": 1, "metric": "train/loss", "step": i, "epoch": 1,
             "value": 3.0, "time": 1.7e9 + t}
            for run, times in logged.items()
            for i, t in enumerate(times)
        ]
    )  # fmt: skip
    made = report.build(sweep(rows, curves=curves), tmp_path, groups=["no_label_smoothing"])
    compute = next(line for line in made.intro if line.startswith("Compute: "))
    minutes = (3 * (6 + 600) + 2 * 54) / 60  # the diverged run had no test evaluation
    hours = (1500 + 400) / 3600  # [0, 1500] and [4600, 5000]: the hour's pause is not counted
    assert compute == (
        f"Compute: {minutes:.1f} trial-minutes over 3 runs (setup, training with validation, and test "
        "evaluation), 6.0 of them in forward, backward and update; 1 not counted (no clocks: not run, or "
        f"stopped before the end); runs were training during {hours:.2f} h of wall time (pauses over 10 "
        "minutes in a run's log not counted)."
    )


def test_diverged_and_failed_trials_are_listed_with_their_reason(tmp_path):
    rows = [
        trial("baseline", 1),
        trial(
            "no_warmup", 1, "diverged", diverged_step=37, group="no_warmup", **{"schedule.warmup_steps": 0}
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
    markdown = render.to_markdown(made)
    assert "| no_warmup,seed=1 | diverged | diverged at update 37 |" in markdown
    assert "## no_warmup" in markdown and "## Trials that did not finish" in markdown
    page = render.to_html(made, tmp_path)
    assert page.startswith("<!DOCTYPE html>") and '<td class="text">diverged at update 37</td>' in page


def test_a_depth_section_plots_bleu_by_depth_once_and_a_two_point_size_comparison_not_at_all(tmp_path):
    """BLEU against parameters would repeat BLEU by layers (one key sets both); two points (a
    seq2seq against a Transformer) are a line that says nothing the table does not."""
    transformer, gru = {"model.arch": "transformer"}, {"model.arch": "seq2seq"}
    rows = [trial("baseline", 1, bleu=21.0, **transformer)]
    rows += [
        trial(f"layers={n}", 1, bleu=15.0 + n, layers=n, params=2e6 * n, group="depth", **transformer)
        for n in (1, 6)
    ]
    rows += [trial("seq2seq", 1, bleu=12.0, params=5e6, group="seq2seq", **gru)]
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "depth_bleu_vs_params.png").write_bytes(b"an earlier report's figure")
    made = report.build(sweep(rows), tmp_path, groups=["depth", "seq2seq"])
    made_now = ["depth_bleu_by_value.png", "depth_bleu_by_value.svg"]  # these runs logged no curves
    assert sorted(f.name for f in (tmp_path / "figures").iterdir()) == made_now
    depth, seq2seq = made.sections
    assert [f.name for f in depth.figures] == ["depth_bleu_by_value"]
    assert "seq2seq_bleu_vs_params" not in [f.name for f in seq2seq.figures]
    assert [r["params"] for r in depth.rows] == ["6.00 M", "2.00 M", "12.00 M"]
    # one seed and no per-sentence statistics: nothing can be resampled, so no comparison at all
    assert depth.comparisons == [] and "no setting has a finished run to compare" in depth.finding
    page = render.to_html(made, tmp_path)
    assert page.count("data:image/png;base64,") == 1


def test_a_sweep_with_nothing_done_is_refused(tmp_path):
    runs = sweep([trial("baseline", 1, status="failed", error="boom")])
    with pytest.raises(report.NothingToReport, match="no trial of ablab/test has finished"):
        report.build(runs, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_schedule_is_drawn_from_its_lowest_seed_that_trained():
    from ablab.analysis.report_figures import trained_schedules

    members = pd.DataFrame(
        [
            {"run_id": "base-1", "setting": "baseline", "seed": 1},
            {"run_id": "const-1", "setting": "constant", "seed": 1},  # not run yet: no curve
            {"run_id": "const-3", "setting": "constant", "seed": 3},
            {"run_id": "const-2", "setting": "constant", "seed": 2},
        ]
    )
    curves = pd.DataFrame(
        [
            {"run_id": run, "setting": run.split("-")[0], "metric": metric, "step": step, "value": lr}
            for run, lr in (("base-1", 1e-3), ("const-2", 7e-4), ("const-3", 5e-4), ("other-1", 1.0))
            for metric in ("train/lr", "train/loss")
            for step in (20, 40)
        ]
    )
    trained = trained_schedules(members, curves)
    assert list(trained.columns) == ["step", "schedule", "lr"]
    assert sorted(set(zip(trained["schedule"], trained["lr"], strict=True))) == [
        ("base", 1e-3),
        ("const", 7e-4),
    ]
    assert len(trained) == 4  # two steps each, the learning rate only
