"""Simulated ablation studies with a known answer, to measure a test's false-positive rate and power.

A study is n seeds of a baseline and of an arm, each run a table of per-sentence BLEU
statistics (:mod:`ablab.analysis.metrics`) on one test set of m sentences. Per run and sentence,
every n-gram order's precision is ``sigmoid(a_k + q_run + z_i + e_run,i)``:

- ``a_k``: the precision of order k at average quality (sets the BLEU level);
- ``z_i ~ N(0, sentence_sd²)``: how hard sentence i is, the same for every run (the spread
  across sentences of a real test set);
- ``q_run = effect + u_run``, ``u ~ N(0, seed_sd²)``: a run's overall quality, the training
  run's own variation around its setting (the arm's ``effect`` is 0 under the null);
- ``e ~ N(0, noise_sd²)``: which sentences a run happens to get right, fresh for every run and
  sentence (what makes two seeds' outputs differ sentence by sentence);
- optionally ``±b_i/2`` with ``b_i ~ N(0, interaction_sd²)``: the arm better on some
  sentences and worse on others by as much, zero on average over test sets (a null effect
  that only a test of the sentence level catches).

Hypothesis lengths are the reference's times ``exp(N(0, length_sd²))``; matches of each order
are binomial in the hypothesis's n-gram count. Every study draws a new test set, new seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize

from ablab.analysis.bootstrap import Resampled, compare, resample_runs, sacrebleu_p
from ablab.analysis.metrics import MAX_ORDER, METRICS, bleu_from_statistics

BLEU = METRICS["bleu"]


@dataclass(frozen=True)
class NoiseModel:
    ref_lengths: np.ndarray  # (m,) reference lengths in tokens
    order_offsets: tuple[float, ...] = (1.2, 0.0, -0.9, -1.7)  # a_1..a_4 (logits)
    sentence_sd: float = 1.0
    seed_sd: float = 0.0
    noise_sd: float = 0.8
    interaction_sd: float = 0.0
    length_sd: float = 0.15


def draw_runs(model: NoiseModel, shifts: np.ndarray, rng: np.random.Generator, sentences=None) -> np.ndarray:
    """Per-sentence BLEU statistics ``(runs, m, 10)`` of runs whose quality shifts are ``shifts``
    (``(runs,)``, or ``(runs, m)`` with a per-sentence part), on ``sentences`` (difficulties,
    drawn if None)."""
    m = len(model.ref_lengths)
    z = rng.normal(0, model.sentence_sd, m) if sentences is None else sentences
    shifts = np.asarray(shifts, dtype=float)
    shifts = shifts[:, None] if shifts.ndim == 1 else shifts
    runs = len(shifts)
    ref = np.broadcast_to(model.ref_lengths, (runs, m))
    hyp = np.maximum(1, np.rint(ref * np.exp(rng.normal(0, model.length_sd, (runs, m)))))
    latent = shifts + z + rng.normal(0, model.noise_sd, (runs, m))
    out = np.zeros((runs, m, 2 + 2 * MAX_ORDER))
    out[..., 0], out[..., 1] = hyp, ref
    for k, offset in enumerate(model.order_offsets):
        total = np.maximum(hyp - k, 0)
        out[..., 2 + MAX_ORDER + k] = total
        out[..., 2 + k] = rng.binomial(total.astype(np.int64), 1 / (1 + np.exp(-(offset + latent))))
    return out


@dataclass(frozen=True)
class StudyResult:
    p: float  # the two-level comparison's p-value
    p_old: float | None  # paired bootstrap over sentences, seeds concatenated (the method it replaced)
    p_seeds: float  # paired t-test over seeds on whole-test-set BLEU (blind to the test set's sample)
    delta: float  # observed Δ BLEU


def simulate_study(
    model: NoiseModel,
    n_seeds: int,
    effect: float,
    rng: np.random.Generator,
    n_resamples: int = 1000,
    old: bool = False,
    pairing: float = 0.0,
) -> StudyResult:
    """One study: n seeds of baseline and arm (quality shift ``effect`` in logits), compared on
    BLEU by :func:`ablab.analysis.bootstrap.compare` and (``old``) by the sentence bootstrap with the
    seeds' outputs concatenated. ``pairing``: the correlation of the arm's and the baseline's
    seed effects at one seed (0: unpaired; near 1: a seed fixes most of what a run does)."""
    m = len(model.ref_lengths)
    z = rng.normal(0, model.sentence_sd, m)
    b = rng.normal(0, model.interaction_sd, m) / 2
    base = rng.normal(0, model.seed_sd, n_seeds)
    arm = pairing * base + np.sqrt(1 - pairing**2) * rng.normal(0, model.seed_sd, n_seeds)
    shifts = np.concatenate([(arm + effect)[:, None] + b, base[:, None] - b])
    stats = draw_runs(model, shifts, rng, sentences=z)
    names = [f"a{s}" for s in range(n_seeds)] + [f"b{s}" for s in range(n_seeds)]
    seed = int(rng.integers(2**31))
    resampled = resample_runs(
        {name: {"bleu": t} for name, t in zip(names, stats, strict=True)}, (BLEU,), n_resamples, seed
    )
    arm = {s: f"a{s}" for s in range(n_seeds)}
    base = {s: f"b{s}" for s in range(n_seeds)}
    result = compare(BLEU, arm, base, resampled)
    seeds_only = compare(BLEU, arm, base, Resampled({}, {}, m, 0), resampled.full).p
    if not old:
        return StudyResult(result.p, None, seeds_only, result.delta)
    concatenated = resample_runs(
        {"arm": {"bleu": stats[:n_seeds].reshape(-1, 10)}, "base": {"bleu": stats[n_seeds:].reshape(-1, 10)}},
        (BLEU,),
        n_resamples,
        seed,
    )
    diffs = concatenated.replicates[("arm", "bleu")] - concatenated.replicates[("base", "bleu")]
    observed = concatenated.full[("arm", "bleu")] - concatenated.full[("base", "bleu")]
    return StudyResult(result.p, sacrebleu_p(diffs, observed), seeds_only, result.delta)


def expected_bleu(model: NoiseModel, shift: float, population: int = 200_000, seed: int = 0) -> float:
    """Corpus BLEU of a run of quality ``shift`` on a very large test set (expected statistics,
    common random numbers so that differences between shifts are smooth)."""
    rng = np.random.default_rng(seed)
    ref = rng.choice(model.ref_lengths, population)
    latent = shift + rng.normal(0, model.sentence_sd, population) + rng.normal(0, model.noise_sd, population)
    sums = np.zeros(2 + 2 * MAX_ORDER)
    sums[0] = sums[1] = ref.sum()
    for k, offset in enumerate(model.order_offsets):
        total = np.maximum(ref - k, 0)
        sums[2 + MAX_ORDER + k] = total.sum()
        sums[2 + k] = (total / (1 + np.exp(-(offset + latent)))).sum()
    return float(bleu_from_statistics(sums))


def shift_for(model: NoiseModel, delta_bleu: float) -> float:
    """The quality shift (logits) that raises expected corpus BLEU by ``delta_bleu``."""
    if delta_bleu == 0:
        return 0.0
    base = expected_bleu(model, 0.0)
    return float(optimize.brentq(lambda s: expected_bleu(model, s) - base - delta_bleu, -3.0, 3.0, xtol=1e-6))


def with_seed_sd(model: NoiseModel, bleu_sd: float, rng: np.random.Generator, runs: int = 200) -> NoiseModel:
    """The model whose corpus BLEU varies across seeds by ``bleu_sd`` in all: the sentence-level
    noise alone gives some spread (measured on ``runs`` runs); ``seed_sd`` adds the rest."""
    base = replace(model, seed_sd=0.0)
    noise_only = float(bleu_from_statistics(draw_runs(base, np.zeros(runs), rng).sum(1)).std(ddof=1))
    if bleu_sd <= noise_only:
        return base
    slope = (expected_bleu(model, 0.05) - expected_bleu(model, -0.05)) / 0.1  # BLEU per logit
    return replace(model, seed_sd=float(np.sqrt(bleu_sd**2 - noise_only**2) / slope))


def observed_moments(runs: list[np.ndarray], n_resamples: int = 500) -> dict[str, float]:
    """What runs of one setting (per-sentence BLEU statistics ``(m, 10)`` each, one test set) look
    like: corpus BLEU, its sd across the runs, the sentence-bootstrap sd of one run's BLEU, and
    of the difference of two runs (pairs of runs). Real runs and simulated ones alike."""
    resampled = resample_runs({str(i): {"bleu": t} for i, t in enumerate(runs)}, (BLEU,), n_resamples, 1)
    full = np.array([resampled.full[(str(i), "bleu")] for i in range(len(runs))])
    reps = np.stack([resampled.replicates[(str(i), "bleu")] for i in range(len(runs))])
    pairs = [(i, j) for i in range(len(runs)) for j in range(i + 1, len(runs))][: max(1, len(runs) // 2)]
    return {
        "bleu": float(full.mean()),
        "seed_sd": float(full.std(ddof=1)),
        "sentence_sd": float(reps.std(axis=1, ddof=1).mean()),
        "pair_sd": float(np.mean([(reps[i] - reps[j]).std(ddof=1) for i, j in pairs])),
    }


def moments(model: NoiseModel, rng: np.random.Generator, runs: int = 20) -> dict[str, float]:
    """:func:`observed_moments` of ``runs`` runs drawn from ``model``."""
    return observed_moments(list(draw_runs(model, rng.normal(0, model.seed_sd, runs), rng)))


def offsets_for(precisions: np.ndarray, model: NoiseModel, population: int = 100_000) -> tuple[float, ...]:
    """Order offsets ``a_k`` that give the model the corpus n-gram precisions ``precisions``."""
    rng = np.random.default_rng(0)
    latent = rng.normal(0, model.sentence_sd, population) + rng.normal(0, model.noise_sd, population)
    ref = rng.choice(model.ref_lengths, population)
    out = []
    for k, target in enumerate(precisions):
        weight = np.maximum(ref - k, 0)

        def gap(a, weight=weight, target=target):
            return (weight / (1 + np.exp(-(a + latent)))).sum() / weight.sum() - target

        out.append(float(optimize.brentq(gap, -20.0, 20.0, xtol=1e-6)))
    return tuple(out)


def fit(runs: list[np.ndarray], rng: np.random.Generator) -> tuple[NoiseModel, dict, dict]:
    """The noise model whose runs look like ``runs`` (real runs of one setting): their reference
    and hypothesis lengths and n-gram precisions, and, by a grid search, the sentence spread and
    per-run noise that match their sentence-bootstrap sds. The seed sd is left at 0 (set it with
    :func:`with_seed_sd`). Returns the model, the real moments and the model's."""
    stacked = np.concatenate(runs)
    hyp, ref = stacked[:, 0], stacked[:, 1]
    ratio = np.log(hyp[(hyp > 0) & (ref > 0)] / ref[(hyp > 0) & (ref > 0)])
    precisions = stacked[:, 2 : 2 + MAX_ORDER].sum(0) / stacked[:, 2 + MAX_ORDER :].sum(0)
    real = observed_moments(runs)
    lengths = runs[0][:, 1]

    def candidate(sentence_sd: float, noise_sd: float) -> tuple[float, NoiseModel, dict]:
        model = NoiseModel(lengths, (0.0,) * MAX_ORDER, sentence_sd, 0.0, noise_sd, 0.0, float(ratio.std()))
        model = replace(model, order_offsets=offsets_for(precisions, model))
        got = moments(model, np.random.default_rng(rng.integers(2**31)))
        return sum((got[k] / real[k] - 1) ** 2 for k in ("bleu", "sentence_sd", "pair_sd")), model, got

    best = min(
        (candidate(a, b) for a in np.linspace(0.3, 3.0, 7) for b in np.linspace(0.1, 2.5, 7)),
        key=lambda c: c[0],
    )
    step_a, step_b = 0.45 / 2, 0.4 / 2  # then a finer grid around the best point
    a0, b0 = best[1].sentence_sd, best[1].noise_sd
    finer = (
        candidate(a, b)
        for a in np.linspace(max(a0 - 2 * step_a, 0.05), a0 + 2 * step_a, 5)
        for b in np.linspace(max(b0 - 2 * step_b, 0.05), b0 + 2 * step_b, 5)
    )
    best = min([best, *finer], key=lambda c: c[0])
    return best[1], real, best[2]
