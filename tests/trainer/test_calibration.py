import numpy as np
import pytest

from ablab.trainer.evaluation.calibration import bins_from_sums, reliability_bins, sentence_bin_sums


def naive_ece(confidence, correct, n_bins):
    """Guo et al.'s definition written out directly: bins (lo, hi], first bin closed at 0."""
    total, n = 0.0, len(confidence)
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        pairs = zip(confidence, correct, strict=True)
        inside = [(c, a) for c, a in pairs if (lo < c <= hi) or (b == 0 and c == 0)]
        if inside:
            conf = sum(c for c, _ in inside) / len(inside)
            acc = sum(a for _, a in inside) / len(inside)
            total += len(inside) / n * abs(acc - conf)
    return total


def test_matches_the_definition_on_random_data():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0, 1, 5000)
    correct = rng.uniform(0, 1, 5000) < confidence**1.5  # overconfident
    bins = reliability_bins(confidence, correct, 15)
    assert bins.ece == pytest.approx(naive_ece(confidence, correct, 15))
    assert bins.count.sum() == 5000


def test_hand_computed_example():
    # bin (0.4, 0.6]: confidences 0.5, 0.5 -> acc 0.5, conf 0.5; bin (0.8, 1.0]: 0.9, 1.0 -> acc 0, conf 0.95
    bins = reliability_bins(np.array([0.5, 0.5, 0.9, 1.0]), np.array([1, 0, 0, 0]), 5)
    assert bins.count.tolist() == [0, 0, 2, 0, 2]
    assert bins.ece == pytest.approx(0.5 * 0.0 + 0.5 * 0.95)
    assert np.isnan(bins.accuracy[0]) and bins.accuracy[2] == 0.5


def test_perfect_calibration_and_edges():
    assert reliability_bins(np.ones(10), np.ones(10), 15).ece == 0.0
    edges = reliability_bins(np.array([1 / 15, 1 / 15 + 1e-9, 1.0]), np.array([1, 1, 1]), 15)
    assert edges.count[0] == 1 and edges.count[1] == 1 and edges.count[14] == 1


def test_records_are_complete():
    records = reliability_bins(np.array([0.3, 0.7]), np.array([1, 0]), 15).to_records()
    assert len(records) == 15
    assert set(records[0]) == {"bin", "lower", "upper", "count", "confidence", "accuracy"}
    assert records[14]["upper"] == 1.0


def test_per_sentence_sums_add_up_to_the_corpus_bins():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0, 1, 3000)
    correct = rng.uniform(0, 1, 3000) < confidence
    sentence = np.sort(rng.integers(0, 200, 3000))
    sums = sentence_bin_sums(confidence, correct, sentence, 200, 15)
    assert sums.shape == (200, 3, 15)
    assert np.array_equal(sums[:, 0].sum(1), np.bincount(sentence, minlength=200))
    whole = reliability_bins(confidence, correct, 15)
    from_sums = bins_from_sums(sums.sum(0))
    assert (
        from_sums.ece
        == pytest.approx(whole.ece, abs=1e-12)
        == pytest.approx(naive_ece(confidence, correct, 15))
    )
    assert np.array_equal(from_sums.count, whole.count)
    # the sum form of ECE: sum_b |correct_b - confidence_b| / N
    count, conf, acc = sums.sum(0)
    assert np.abs(acc - conf).sum() / count.sum() == pytest.approx(whole.ece, abs=1e-12)
