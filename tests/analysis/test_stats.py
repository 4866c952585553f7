import math
import random

import numpy as np
import pandas as pd
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest
from scipy import stats as scipy_stats

from analysis.stats import (
    aggregate,
    bleu_from_statistics,
    bleu_statistics,
    format_p,
    paired_bootstrap,
    summarize,
    welch_p,
)

REFERENCES = [
    f"Ein {a} Mann {b} auf einer {c} Straße ."
    for a in ("junger", "alter", "großer")
    for b in ("steht", "sitzt", "läuft", "wartet")
    for c in ("belebten", "leeren", "nassen", "langen", "schmalen")
]  # 60 sentences


def noisy(references, drop, seed):
    rng = random.Random(seed)
    return [" ".join(w for w in r.split() if rng.random() > drop) for r in references]


def test_corpus_bleu_from_sentence_statistics_equals_sacrebleu():
    hyps = noisy(REFERENCES, 0.3, 1)
    totals = bleu_statistics(hyps, REFERENCES).sum(0)
    assert bleu_from_statistics(totals)[0] == pytest.approx(sacrebleu.corpus_bleu(hyps, [REFERENCES]).score)


def test_zero_matches_are_smoothed_as_sacrebleu_does():
    hyps = ["Mann Ein", "Straße auf"]  # unigram matches only
    refs = ["Ein Mann steht .", "auf einer Straße ."]
    totals = bleu_statistics(hyps, refs).sum(0)
    assert bleu_from_statistics(totals)[0] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)


@pytest.mark.parametrize("drops", [(0.3, 0.25), (0.3, 0.3), (0.2, 0.4)])
def test_paired_bootstrap_equals_sacrebleus_own(drops):
    baseline, system = noisy(REFERENCES, drops[0], 1), noisy(REFERENCES, drops[1], 2)
    ours = paired_bootstrap(baseline, system, REFERENCES, n_samples=1000, seed=12345)
    test = PairedTest(
        [("baseline", baseline), ("system", system)],
        {"BLEU": BLEU()},
        [REFERENCES],
        test_type="bs",
        n_samples=1000,
    )
    _, scores = test()
    reference = scores["BLEU"][1]
    assert ours["bleu"] == pytest.approx(reference.score)
    assert ours["baseline_bleu"] == pytest.approx(scores["BLEU"][0].score)
    assert ours["p_value"] == pytest.approx(reference.p_value)


def test_summarize_is_mean_sd_and_students_t_interval():
    values = np.array([20.0, 22.0, 24.0])
    mean, sd, half = summarize(values)
    assert (mean, sd) == (22.0, 2.0)
    assert half == pytest.approx(4.302652729911275 * 2.0 / math.sqrt(3))  # t(0.975, 2)
    assert math.isnan(summarize(np.array([5.0]))[1]) and math.isnan(summarize(np.array([]))[0])


def test_aggregate_per_setting_skips_missing_values():
    table = pd.DataFrame(
        {
            "setting": ["a", "a", "b", "b", "b"],
            "bleu": [10.0, 12.0, 20.0, None, 22.0],
        }
    )
    out = aggregate(table, "setting", ["bleu"]).set_index("setting")
    assert out.loc["a", "n"] == 2 and out.loc["a", "bleu_mean"] == 11.0
    assert out.loc["b", "n"] == 3 and out.loc["b", "bleu_mean"] == 21.0
    assert out.loc["b", "bleu_sd"] == pytest.approx(math.sqrt(2))


def test_welch_p_matches_scipy_and_needs_two_values_a_side():
    a, b = [0.021, 0.019, 0.024], [0.058, 0.061, 0.049]
    assert welch_p(a, b) == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert math.isnan(welch_p([1.0], [2.0, 3.0]))


def test_format_p():
    assert format_p(0.0004) == "p < 0.001"
    assert format_p(0.004) == "p = 0.004"
    assert format_p(0.2345) == "p = 0.23"
    assert format_p(math.nan) == "-"
