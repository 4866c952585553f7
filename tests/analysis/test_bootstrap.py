"""The two-level comparison against independent references: sacreBLEU's paired bootstrap for one
seed, scipy's paired t-test for one sentence per seed, and the resampling itself."""

import math
import random

import numpy as np
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest
from scipy import stats as scipy_stats

from ablab.analysis import bootstrap
from ablab.analysis.bootstrap import (
    SEEDS_AND_SENTENCES,
    SEEDS_ONLY,
    TEST_SET_ONLY,
    compare,
    resample_runs,
    seed_test,
    sentence_component,
)
from ablab.analysis.metrics import METRICS

REFERENCES = [f"Ein {a} Mann {b} auf der {c} Straße ." for a in "abcd" for b in "efgh" for c in "ijk"]  # 48


def noisy(drop, seed):
    rng = random.Random(seed)
    return [" ".join(w for w in r.split() if rng.random() > drop) for r in REFERENCES]


def bleu_stats(hyps):
    return {"bleu": np.array(BLEU()._extract_corpus_statistics(hyps, [REFERENCES]), dtype=float)}


@pytest.mark.parametrize("drops", [(0.3, 0.25), (0.3, 0.3), (0.2, 0.4)])
def test_one_seed_is_sacrebleus_paired_bootstrap(drops):
    baseline, system = noisy(drops[0], 1), noisy(drops[1], 2)
    resampled = resample_runs({"b": bleu_stats(baseline), "a": bleu_stats(system)}, (METRICS["bleu"],), 1000)
    c = compare(METRICS["bleu"], {1: "a"}, {1: "b"}, resampled)
    test = PairedTest(
        [("baseline", baseline), ("system", system)],
        {"BLEU": BLEU()},
        [REFERENCES],
        test_type="bs",
        n_samples=1000,
    )
    _, scores = test()
    assert c.scope == TEST_SET_ONLY and c.seeds == (1,)
    assert c.arm == pytest.approx(scores["BLEU"][1].score) and c.baseline == pytest.approx(
        scores["BLEU"][0].score
    )
    assert c.p == pytest.approx(scores["BLEU"][1].p_value) and c.same_test_set == (c.p,)
    assert c.p_floor == 1 / 1001
    low, high = c.interval()
    assert low <= c.delta <= high


def test_one_sentence_per_seed_is_the_paired_t_test_over_seeds():
    arm, base = [31.0, 29.5, 30.2, 32.0], [29.0, 29.9, 28.1, 30.5]
    stats = {f"a{i}": {"nll": np.array([[v, 1.0]])} for i, v in enumerate(arm)}
    stats |= {f"b{i}": {"nll": np.array([[v, 1.0]])} for i, v in enumerate(base)}
    resampled = resample_runs(stats, (METRICS["test_nll"],), 500)
    c = compare(
        METRICS["test_nll"], {i: f"a{i}" for i in range(4)}, {i: f"b{i}" for i in range(4)}, resampled
    )
    reference = scipy_stats.ttest_rel(arm, base)
    assert c.scope == SEEDS_AND_SENTENCES and c.sentence_var == 0 and c.seed_share == 1
    assert c.delta == pytest.approx(np.mean(arm) - np.mean(base))
    assert c.p == pytest.approx(reference.pvalue)
    ci = reference.confidence_interval(0.95)
    assert c.interval() == pytest.approx((ci.low, ci.high))
    # lower NLL is better: the arm's NLL is below the baseline's in 1 of the 4 paired seeds
    assert (c.better_seeds, c.tied_seeds) == (sum(x < y for x, y in zip(arm, base, strict=True)), 0) == (1, 0)


def test_runs_without_sentence_statistics_are_compared_at_the_seed_level():
    logged = {("a1", "bleu"): 30.0, ("a2", "bleu"): 31.5, ("a3", "bleu"): 29.0}
    logged |= {("b1", "bleu"): 28.0, ("b2", "bleu"): 30.0, ("b3", "bleu"): 28.5}
    empty = resample_runs({}, (METRICS["bleu"],), 100)
    c = compare(
        METRICS["bleu"], {s: f"a{s}" for s in (1, 2, 3)}, {s: f"b{s}" for s in (1, 2, 3)}, empty, logged
    )
    assert c.scope == SEEDS_ONLY
    assert c.p == pytest.approx(scipy_stats.ttest_rel([30.0, 31.5, 29.0], [28.0, 30.0, 28.5]).pvalue)


def test_seeds_are_paired_by_value_and_a_seed_one_side_lacks_is_left_out():
    stats = {f"{side}{s}": bleu_stats(noisy(0.3, 10 * s + (side == "a"))) for side in "ab" for s in (1, 2, 3)}
    resampled = resample_runs(stats, (METRICS["bleu"],), 200)
    c = compare(METRICS["bleu"], {1: "a1", 2: "a2", 3: "a3"}, {1: "b1", 3: "b3", 4: "b2"}, resampled)
    assert c.seeds == (1, 3)
    full = {k[0]: v for k, v in resampled.full.items()}
    assert c.delta == pytest.approx((full["a1"] + full["a3"] - full["b1"] - full["b3"]) / 2)
    assert compare(METRICS["bleu"], {5: "a1"}, {1: "b1"}, resampled) is None


def test_every_run_is_scored_on_the_same_resamples_whatever_the_chunking(monkeypatch):
    stats = {name: bleu_stats(noisy(0.2 + 0.1 * i, i)) for i, name in enumerate("xyz")}
    first = resample_runs(stats, (METRICS["bleu"],), 2500, seed=7)
    monkeypatch.setattr(bootstrap, "CHUNK", 333)
    second = resample_runs(stats, (METRICS["bleu"],), 2500, seed=7)
    for key in first.replicates:
        assert np.array_equal(first.replicates[key], second.replicates[key])
    indices = bootstrap.sentence_resamples(len(REFERENCES), 2500, 7)
    rows = stats["y"]["bleu"]
    assert first.replicates[("y", "bleu")][1234] == pytest.approx(
        sacrebleu.BLEU()._compute_score_from_stats(list(rows[indices[1234]].sum(0))).score
    )
    assert first.full[("x", "bleu")] == pytest.approx(
        sacrebleu.corpus_bleu(noisy(0.2, 0), [REFERENCES]).score
    )


def test_the_sentence_component_keeps_what_the_seeds_share():
    # sentence effects of the difference (shared by every seed) with variance 4 and seed-by-sentence
    # noise with variance 9, 400 sentences, 5 seeds: V_sent estimates 4/400 = 0.01
    rng = np.random.default_rng(0)
    n, m = 5, 400
    shared = rng.normal(0, 2, m)
    estimates = []
    for _ in range(200):
        d = shared + rng.normal(0, 3, (n, m))  # per seed, per sentence differences
        resample = rng.integers(0, m, (400, m))
        each = d[:, resample].mean(axis=2)  # (n, B) mean differences under each resample
        v_all, v_each = each.mean(0).var(ddof=1), each.var(axis=1, ddof=1).mean()
        estimates.append(sentence_component(v_all, v_each, n, m))
    assert np.mean(estimates) == pytest.approx(np.var(shared) / m, rel=0.15)
    assert sentence_component(1.0, 5.0, 5, 400) == 0.0  # all noise: nothing shared


def test_a_constant_difference_with_no_spread_is_certain():
    stats = {f"a{s}": {"nll": np.array([[2.0, 1.0]])} for s in (1, 2)} | {
        f"b{s}": {"nll": np.array([[1.0, 1.0]])} for s in (1, 2)
    }
    c = compare(
        METRICS["test_nll"],
        {1: "a1", 2: "a2"},
        {1: "b1", 2: "b2"},
        resample_runs(stats, (METRICS["test_nll"],), 50),
    )
    assert c.se == 0 and c.p == 0.0 and c.interval() == (1.0, 1.0)


def test_without_a_sentence_part_p_and_interval_are_student_s_exactly():
    # √(v)² rounds above v for some v: the seeds' share must still be exactly 1 (Student's t)
    d = np.array(
        [1.091834097425692, 1.597334097425692, 2.102834097425692, 2.6083340974256917, 3.1138340974256917]
    )
    se, p = seed_test(d.mean(), d.var(ddof=1) / 5, 0.0, 5)
    assert p == pytest.approx(scipy_stats.ttest_1samp(d, 0).pvalue, rel=1e-12)
    assert seed_test(1.0, math.nan, 0.1, 3)[1] != seed_test(1.0, math.nan, 0.1, 3)[1]  # NaN stays NaN
