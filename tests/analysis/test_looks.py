"""A sequential sweep's looks replayed from its runs: which comparisons are decided, futile or
waiting, and which seeds the next look needs."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ablab.analysis import looks, path_figure, report
from ablab.analysis import sequential as seq
from ablab.analysis.bootstrap import seed_test
from ablab.analysis.figures import palette
from ablab.analysis.placement import collisions
from ablab.analysis.verdicts import gather
from tests.analysis.test_report import smoothing_sweep, statistics, trial

DESIGN = seq.Design(3, 6, 1)


@dataclass
class SeedLevel:
    """Evidence from each run's score alone: Δ the mean paired difference, its seed part s²/n,
    a small fixed test-set part."""

    trials: pd.DataFrame
    runs: dict[str, dict[int, str]]

    def contrast(self, metric, plus, minus):
        (arm,), (base,) = plus, minus
        score = dict(zip(self.trials["run_id"], self.trials["bleu"], strict=True))
        seeds = sorted(set(self.runs.get(arm, {})) & set(self.runs.get(base, {})))
        if not seeds:
            return None
        d = np.array([score[self.runs[arm][s]] - score[self.runs[base][s]] for s in seeds])
        seed_var = d.var(ddof=1) / len(d) if len(d) > 1 else float("nan")
        return SimpleNamespace(delta=d.mean(), seed_var=seed_var, sentence_var=0.01, seeds=tuple(seeds))


def evidence(scores: dict[str, list[float]], status: dict[tuple[str, int], str] | None = None) -> SeedLevel:
    rows = [
        {"run_id": f"{s}-{i + 1}", "setting": s, "seed": i + 1, "bleu": v,
         "status": (status or {}).get((s, i + 1), "finished")}
        for s, values in scores.items()
        for i, v in enumerate(values)
    ]  # fmt: skip
    trials = pd.DataFrame(rows)
    runs: dict[str, dict[int, str]] = {}
    for r in rows:
        if r["status"] == "finished":
            runs.setdefault(r["setting"], {})[r["seed"]] = r["run_id"]
    return SeedLevel(trials, runs)


def test_an_undecided_comparison_waits_for_the_next_looks_seeds_and_the_baseline_with_it():
    base = [27.9, 28.1, 27.8]
    ev = evidence({"baseline": base, "big": [20.0, 20.3, 19.8], "unclear": [27.2, 27.9, 26.9]})
    paths, waiting = looks.arm_paths(ev, {"big": "bleu", "unclear": "bleu"}, DESIGN)
    by_name = {p.name: p for p in paths}
    assert by_name["big"].stopped == seq.DECIDED and by_name["unclear"].stopped is None
    assert waiting == 4 and looks.wanted_trials(paths, waiting) == {"unclear": 4, "baseline": 4}

    # the next look's runs arrive: seed 4 of the arm and the baseline (not of the decided arm)
    more = evidence(
        {"baseline": [*base, 28.0], "big": [20.0, 20.3, 19.8], "unclear": [27.2, 27.9, 26.9, 27.0]}
    )
    again, waiting = looks.arm_paths(more, {"big": "bleu", "unclear": "bleu"}, DESIGN)
    unclear = {p.name: p for p in again}["unclear"]
    assert [look.seeds for look in unclear.looks] == [3, 4]


def test_a_look_waits_while_a_seed_of_it_is_still_running():
    ev = evidence({"baseline": [28.0, 28.2, 27.9], "a": [27.0, 28.5, 27.2]}, status={("a", 3): "running"})
    paths, waiting = looks.arm_paths(ev, {"a": "bleu"}, DESIGN)
    assert waiting == 3 and paths[0].looks == []


def test_a_failed_seed_holds_its_look_and_the_others_have_it():
    """A failed trial is run again by the next ``ablab run``: a look taken without it would
    change once it came. The arms whose seeds are all in have the look meanwhile."""
    ev = evidence(
        {"baseline": [28.0, 28.2, 27.9], "a": [27.0, 28.5, 27.2], "big": [18.0, 18.3, 17.9]},
        status={("a", 2): "failed"},
    )
    paths, waiting = looks.arm_paths(ev, {"a": "bleu", "big": "bleu"}, DESIGN)
    by_name = {p.name: p for p in paths}
    assert waiting == 3 and by_name["a"].looks == [] and by_name["a"].stopped is None
    assert by_name["big"].stopped == seq.DECIDED and looks.wanted_trials(paths, waiting) == {
        "a": 3,
        "baseline": 3,
    }


def test_a_diverged_seed_leaves_the_pairs_and_the_degrees_of_freedom():
    scores = {"baseline": [28.0, 28.2, 27.9], "a": [27.0, 0.0, 27.2]}
    ev = evidence(scores, status={("a", 2): "diverged"})
    ((look,),) = [p.looks for p in looks.arm_paths(ev, {"a": "bleu"}, DESIGN)[0]]
    assert (look.seeds, look.pairs) == (3, 2)  # the look's index stays 3; its test has 2 pairs
    d = np.array([27.0 - 28.0, 27.2 - 27.9])
    assert look.p == pytest.approx(float(seed_test(d.mean(), d.var(ddof=1) / 2, 0.01, 2)[1]))
    assert look.p > float(seed_test(d.mean(), d.var(ddof=1) / 2, 0.01, 3)[1])  # not 2 df: 1

    every = {("a", s): "diverged" for s in (1, 2, 3)}
    paths, waiting = looks.arm_paths(evidence(scores, status=every), {"a": "bleu"}, DESIGN)
    assert paths[0].stopped == seq.UNPAIRED and waiting is None


def test_a_look_the_cap_cut_short_is_had_by_the_arms_it_ran():
    """The runs stop at max_runs after the baseline's and one arm's seeds of the look at 4: that
    arm has the look; the other keeps its look at 3, and the report says the cap stopped it."""
    base, near = [28.0, 28.2, 27.9, 28.1], [27.2, 27.9, 26.9, 27.4]
    ev = evidence({"baseline": base, "near": near, "also": near[:3]})
    design = seq.Design(3, 6, 1, max_runs=11)
    arms = {"near": "bleu", "also": "bleu"}
    paths, waiting = looks.arm_paths(ev, arms, design)
    by_name = {p.name: p for p in paths}
    assert [k.seeds for k in by_name["near"].looks] == [3, 4] and [
        k.seeds for k in by_name["also"].looks
    ] == [3]
    assert waiting == 4 and by_name["also"].stopped is None
    looks.mark_cut(paths, waiting, ev.trials, design)
    assert by_name["also"].stopped == seq.CUT and by_name["near"].stopped is None
    roomy = seq.Design(3, 6, 1, max_runs=20)  # under its cap its runs may still come: not cut
    fresh, waiting = looks.arm_paths(ev, arms, roomy)
    looks.mark_cut(fresh, waiting, ev.trials, roomy)
    assert {p.name: p.stopped for p in fresh} == {"near": None, "also": None}


def test_the_real_comparison_of_a_large_effect_is_decided_at_the_first_look(tmp_path):
    runs = smoothing_sweep(arm_quality=3)
    ev = gather(runs, runs.trials, 1000)
    paths, waiting = looks.arm_paths(ev, {"no_label_smoothing": "bleu"}, DESIGN)
    assert paths[0].stopped == seq.DECIDED and waiting is None


def test_a_sequential_report_decides_its_primary_verdicts_by_the_procedure(tmp_path):
    made = report.build(
        smoothing_sweep(arm_quality=3), tmp_path, n_resamples=1000, seed_design=seq.Design(3, 6, 3)
    )
    ((arm,),) = [[r for r in s.rows if r["setting"] == "no_label_smoothing"] for s in made.sections]
    assert arm["verdict"] == "differs (lower)"
    (look,) = made.looks
    assert (look["arm"], look["seeds"], look["then"]) == ("no_label_smoothing", "3", "decided")
    assert "Seeds were added look by look (at 3, 6 seeds)" in made.method[-1]
    assert made.looks_figure.name == "looks" and not made.looks_figure.collisions
    assert (tmp_path / "figures" / "looks.png").stat().st_size > 10_000

    close = report.build(
        smoothing_sweep(arm_quality=8), tmp_path, n_resamples=1000, seed_design=seq.Design(3, 6, 3)
    )
    (open_,) = [c for s in close.sections for c in s.comparisons if c["metric"] == "BLEU"]
    assert open_["verdict"] == "inconclusive" and open_["to resolve"] == "its look at 6 seeds is still to run"
    (finding,) = [s.finding for s in close.sections]
    assert "; its look at 6 seeds is still to run" in finding and "resolving it needs" not in finding

    # the arm's outputs are the baseline's, seed for seed; the baseline has seeds 4-6 too, as it
    # would where another arm's look ran them
    same = smoothing_sweep(arm_quality=9)
    same.trials = pd.concat([same.trials, pd.DataFrame([trial("baseline", s) for s in (4, 5, 6)])])
    same.statistics |= {f"baseline-{s}": statistics(9, s) for s in (4, 5, 6)}
    same.statistics |= {f"no_label_smoothing-{s}": same.statistics[f"baseline-{s}"] for s in (1, 2, 3)}
    same.test_sets = dict.fromkeys(same.statistics, "test_2016_flickr")
    nothing = report.build(same, tmp_path, n_resamples=1000, seed_design=seq.Design(3, 6, 3))
    futile, *secondary = [c for s in nothing.sections for c in s.comparisons]
    assert futile["verdict"] == "inconclusive" and futile["to resolve"] == "no more seeds: futile at 3 seeds"
    assert [c["seeds"] for c in [futile, *secondary]] == ["3"] * 4  # seeds 4-6 were not for it to run
    (finding,) = [s.finding for s in nothing.sections]
    assert "no more seeds: futile at 3 seeds" in finding and "left out" not in finding


def test_the_path_figure_draws_each_comparisons_looks_and_how_it_ended():
    design = seq.Design(3, 9, 2)
    ev = evidence(
        {
            "baseline": [28.0, 28.2, 27.9, 28.1, 28.0, 28.3, 27.9, 28.1, 28.2],
            "big": [18.0, 18.3, 17.8, 18.1, 18.0, 18.2, 17.9, 18.1, 18.0],
            "near": [27.6, 28.1, 27.5, 27.9, 27.7, 28.0, 27.6, 27.8, 27.9],
            "same": [28.0, 28.3, 27.8, 28.1, 28.1],
        }
    )
    arms = {"big": "bleu", "near": "bleu", "same": "bleu"}
    paths, waiting = looks.arm_paths(ev, arms, design)
    table = looks.look_table(paths, arms, design)
    ended = {arm: (own["seeds"].iloc[-1], own["stopped"].iloc[-1]) for arm, own in table.groupby("arm")}
    assert ended == {"big": (5, seq.DECIDED), "near": (9, seq.DECIDED), "same": (3, seq.FUTILE)}
    assert waiting is None
    assert (table["low"] <= table["delta"]).all() and (table["delta"] <= table["high"]).all()
    decided = table[table["stopped"] == seq.DECIDED]
    assert (decided["high"] < 0).all()  # decided where the repeated interval leaves 0
    assert (table[table["stopped"] == ""]["high"] > 0).all()  # and not before
    fig = path_figure.plot_paths(table, palette(["baseline", *arms]), design)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == list(arms)
    assert [[t.get_text() for t in ax.texts] for ax in shown] == [[p.stopped] for p in paths]
    assert not collisions(fig)
    rows = looks.look_rows(table)
    assert [r["arm"] for r in rows] == ["big", "", "near", "", "", "", "same"]
    assert [r["then"] for r in rows][:2] == ["more seeds", seq.DECIDED]

    started = evidence({"baseline": [28.0, 28.2, 27.9], "near": [27.6, 28.1, 27.5]})
    paths, waiting = looks.arm_paths(started, {"near": "bleu"}, design)
    assert waiting == 5  # "near" is open: its look at 5 seeds still to run
    running = looks.look_table(paths, {"near": "bleu"}, design)
    assert list(running["stopped"]) == [seq.WAITING]
    assert looks.look_rows(running)[-1]["then"] == seq.WAITING  # not "nan"
    fig = path_figure.plot_paths(running, palette(["baseline", "near"]), design)
    assert [t.get_text() for t in fig.axes[0].texts] == [seq.WAITING]
    assert not collisions(fig)  # written from its first look inward, not across the frame
