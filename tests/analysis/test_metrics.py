"""Corpus scores from summed per-sentence statistics equal sacreBLEU's and the trainer's own."""

import random

import numpy as np
import pytest
import sacrebleu

from ablab.analysis.metrics import (
    METRICS,
    bleu_from_statistics,
    chrf_from_statistics,
    ece_from_statistics,
    nll_from_statistics,
)
from ablab.trainer.evaluation.calibration import reliability_bins, sentence_bin_sums

REFERENCES = [
    f"Ein {a} Mann {b} auf einer {c} Straße ."
    for a in ("junger", "alter", "großer")
    for b in ("steht", "sitzt", "läuft", "wartet")
    for c in ("belebten", "leeren", "nassen", "langen", "schmalen")
]  # 60 sentences


def noisy(references, drop, seed):
    rng = random.Random(seed)
    return [" ".join(w for w in r.split() if rng.random() > drop) for r in references]


def statistics(metric, hyps, refs):
    return np.array(metric._extract_corpus_statistics(hyps, [refs]), dtype=float)


@pytest.mark.parametrize("drop", [0.0, 0.3, 0.7])
def test_bleu_and_chrf_from_statistics_equal_sacrebleu(drop):
    hyps = noisy(REFERENCES, drop, 1)
    for metric, score, reference in (
        (sacrebleu.BLEU(), bleu_from_statistics, sacrebleu.corpus_bleu(hyps, [REFERENCES]).score),
        (
            sacrebleu.BLEU(lowercase=True),
            bleu_from_statistics,
            sacrebleu.BLEU(lowercase=True).corpus_score(hyps, [REFERENCES]).score,
        ),
        (sacrebleu.CHRF(), chrf_from_statistics, sacrebleu.corpus_chrf(hyps, [REFERENCES]).score),
    ):
        assert score(statistics(metric, hyps, REFERENCES).sum(0)) == pytest.approx(reference, abs=1e-9)


def test_edge_cases_score_as_sacrebleu_does():
    cases = [
        (["Mann Ein", "Straße auf"], ["Ein Mann steht .", "auf einer Straße ."]),  # unigram matches only
        (["", ""], ["Ein Mann .", "Eine Frau ."]),  # empty output
        (["x", "y"], ["a", "b"]),  # nothing matches, one character
    ]
    for hyps, refs in cases:
        bleu = bleu_from_statistics(statistics(sacrebleu.BLEU(), hyps, refs).sum(0))
        chrf = chrf_from_statistics(statistics(sacrebleu.CHRF(), hyps, refs).sum(0))
        assert bleu == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9)
        assert chrf == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-9)


def test_scores_are_vectorized_over_leading_axes():
    rows = statistics(sacrebleu.BLEU(), noisy(REFERENCES, 0.3, 2), REFERENCES)
    weights = np.random.default_rng(0).integers(0, 3, size=(4, 5, len(rows))).astype(float)
    batched = bleu_from_statistics(weights @ rows)
    assert batched.shape == (4, 5)
    assert batched[2, 3] == pytest.approx(bleu_from_statistics(weights[2, 3] @ rows))


def test_ece_from_bin_sums_equals_the_formula_on_the_concatenated_tokens():
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0, 1, 4000)
    correct = rng.uniform(0, 1, 4000) < confidence**2
    sentence = np.sort(rng.integers(0, 300, 4000))
    sums = sentence_bin_sums(confidence, correct, sentence, 300, 15).reshape(300, -1)
    assert ece_from_statistics(sums.sum(0)) == pytest.approx(reliability_bins(confidence, correct, 15).ece)


def test_nll_is_summed_nll_over_summed_tokens():
    assert nll_from_statistics(np.array([[6.0, 3.0], [2.0, 1.0]]).sum(0)) == pytest.approx(2.0)
    assert set(METRICS) == {"bleu", "bleu_lc", "chrf", "ece", "test_nll"}
    assert not METRICS["ece"].higher_is_better and METRICS["chrf"].higher_is_better
