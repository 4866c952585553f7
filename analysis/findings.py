"""Verdicts in plain words: the sentences and table cells of the report, computed, never written
by hand. Every number comes from a :class:`~ablab.analysis.verdicts.Verdict`."""

from __future__ import annotations

import pandas as pd

from ablab.analysis import budget, hardware
from ablab.analysis.bootstrap import SEEDS_ONLY
from ablab.analysis.cells import MISSING, Badge, Number
from ablab.analysis.factorial import INTERACTION, MAIN, SIMPLE, Contrast
from ablab.analysis.metrics import METRICS
from ablab.analysis.sequential import FUTILITY_POWER, SPENDING_EXPONENT
from ablab.analysis.stats import P_SHOWN_FLOOR, format_p
from ablab.analysis.verdicts import (
    CONFOUNDED,
    DIFFERS,
    INCONCLUSIVE,
    MAX_SEEDS,
    NO_FAMILY,
    ONE_SEED,
    PRIMARY,
    SECONDARY,
    Verdict,
)
from ablab.trainer.tracking import record

UNTESTED = (
    "no verdict: confounded by hardware (the runs compared computed differently: in different "
    "precisions or on kinds of device that round differently, which changes their numbers besides "
    "the ablation)"
)


HOLM_ONLY_MARK = "†"
HOLM_ONLY = (
    "a 'differs' marked † was reached by a later step of Holm's procedure, which tests the j-th "
    "smallest p of k at 0.05/(k − j + 1): its simultaneous interval, which holds for all k at once, "
    "still touches 0"
)


def number(value: float, digits: int, signed: bool = False) -> str:
    """A value at the metric's precision, ``+``/``−`` signed when asked (a real minus sign)."""
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return text.replace("-", "−")


def interval(bounds: tuple[float, float], digits: int, signed: bool = True) -> str:
    """``[−1.20, +0.85]`` (a difference's) or ``[24.61, 25.35]`` (a score's, unsigned)."""
    low, high = bounds
    return f"[{number(low, digits, signed)}, {number(high, digits, signed)}]"


def delta_cell(v: Verdict) -> Number:
    """``+0.85 [−3.10, +4.80]``: Δ with its simultaneous interval."""
    digits = METRICS[v.comparison.metric].digits
    return Number(f"{number(v.comparison.delta, digits, True)} {interval(v.simultaneous, digits)}")


BADGES = {DIFFERS: "differs", INCONCLUSIVE: "inconclusive", CONFOUNDED: "confounded", ONE_SEED: "one-seed"}
"""A verdict's word -> the kind of its badge."""


def verdict_cell(v: Verdict) -> Badge:
    """``differs (lower)``, ``inconclusive`` or ``test set only: p = …``, as a badge."""
    c = v.comparison
    if v.word == DIFFERS:
        text = f"differs ({'higher' if c.delta > 0 else 'lower'})" + (HOLM_ONLY_MARK if v.holm_only else "")
    elif v.word == ONE_SEED:
        text = f"{ONE_SEED}: {format_p(c.p, c.p_floor)}"
    else:
        text = v.word  # inconclusive, or confounded by hardware
    return Badge(text, BADGES[v.word])


def seeds_to_resolve(v: Verdict) -> str:
    """What it would take to resolve an inconclusive comparison."""
    if v.word != INCONCLUSIVE:
        return "-"
    if v.stopped:  # a sequential design: where its seeds stand
        return v.stopped
    if v.comparison.delta == 0:
        return "no effect to detect"
    fewest, most = v.seeds_needed or (None, None)
    if fewest is not None:
        if most == fewest:
            return f"{fewest} seeds"
        return f"{fewest}–{most} seeds" if most is not None else f"{fewest} to more than {MAX_SEEDS} seeds"
    if v.test_set_limited:
        return "a larger test set (the sentences' own variation hides it at any number of seeds)"
    return f"more than {MAX_SEEDS} seeds"


def detectable_cell(v: Verdict) -> Number:
    if v.detectable is None:
        return Number(MISSING)
    return Number(f"≥ {number(v.detectable, METRICS[v.comparison.metric].digits)}")


def sentence(v: Verdict) -> str:
    """One comparison as a sentence of the group's finding."""
    c, m = v.comparison, METRICS[v.comparison.metric]
    change = f"{number(c.baseline, m.digits)} → {number(c.arm, m.digits)}"
    if v.word == CONFOUNDED:
        return f"{v.setting}: {m.label} {change} ({number(c.delta, m.digits, True)}), {UNTESTED}"
    if v.word == ONE_SEED:
        return (
            f"{v.setting}: {m.label} {change} ({number(c.delta, m.digits, True)}); with one seed this "
            f"covers test-set variation only ({format_p(c.p, c.p_floor)}, sentence bootstrap), no verdict "
            "across training runs"
        )
    if v.word == DIFFERS:
        verb = "raised" if c.delta > 0 else "lowered"
        return f"{v.setting} {verb} {m.label}: {change} ({_evidence(v)})"
    delta = number(c.delta, m.digits, True)
    return f"{v.setting}: inconclusive on {m.label}, {change} ({delta}, {_evidence(v)})"


def effect_sentence(v: Verdict, effect: Contrast) -> str:
    """A factorial contrast as a sentence: a main effect like an arm's, averaged over the other
    factors; a simple effect likewise, at one level of another factor; an interaction as its
    inner effect at two levels of the first factor."""
    c, m = v.comparison, METRICS[v.comparison.metric]
    if effect.kind in (MAIN, SIMPLE):
        averaged = "main effect, averaged over the other factors" if effect.kind == MAIN else SIMPLE
        subject = f"{effect.label} ({averaged})"
        if v.word == DIFFERS:
            verb = "raised" if c.delta > 0 else "lowered"
            change = f"{number(c.baseline, m.digits)} → {number(c.arm, m.digits)}"
            return f"{subject} {verb} {m.label}: {change} ({_evidence(v)})"
    else:
        subject = (
            f"the interaction: the effect of {effect.inner} on {m.label} is "
            f"{number(c.baseline, m.digits, True)} with {effect.before} and "
            f"{number(c.arm, m.digits, True)} with {effect.after}"
        )
        if v.word == DIFFERS:
            return f"{subject}, a difference of {number(c.delta, m.digits, True)} ({_evidence(v)})"
    if v.word == CONFOUNDED:
        return f"{subject}: {number(c.delta, m.digits, True)}, {UNTESTED}"
    if v.word == ONE_SEED:
        return f"{subject}: {number(c.delta, m.digits, True)}, test set only ({format_p(c.p, c.p_floor)})"
    return f"{subject}: inconclusive, {number(c.delta, m.digits, True)} ({_evidence(v)})"


def _evidence(v: Verdict) -> str:
    """The interval, p or power and seeds behind a verdict, for the parentheses of a sentence."""
    c, m = v.comparison, METRICS[v.comparison.metric]
    seeds = f"{len(c.seeds)} seed{'s' if len(c.seeds) != 1 else ''}"
    if v.left_out:
        seeds += " (" + "; ".join(f"seed {seed} left out: {why}" for seed, why in v.left_out) + ")"
    simultaneous = f"simultaneous interval {interval(v.simultaneous, m.digits)}"
    if v.word == DIFFERS:
        holm = format_p(v.p_adjusted, name="Holm p")
        return f"{simultaneous}{HOLM_ONLY_MARK if v.holm_only else ''}, {holm}, {seeds}"
    text = f"{simultaneous} includes 0, {seeds}"
    if v.detectable is not None:
        text += f"; this test detects |Δ| ≥ {number(v.detectable, m.digits)} with 80 % power"
    resolve = seeds_to_resolve(v)
    if v.stopped:  # a sequential design: the look it waits for, or why it took no more seeds
        text += f"; {v.stopped}"
    elif resolve.endswith("seeds") and resolve[0].isdigit():
        text += (
            f"; {resolve} would detect {number(c.delta, m.digits, True)} (the seed variance at either "
            "end of its 80 % interval)"
        )
    elif resolve != "-":
        text += f"; resolving it needs {resolve}"
    return text


def method_text(
    primary: list[str],
    families: dict[str, int],
    n_resamples: int,
    seeds: list[int],
    any_seed_level_only: bool,
    crossed: bool = False,
) -> str:
    """How the comparisons were made, for the report's preamble: ``primary`` the labels of the
    primary metrics, ``families`` each Holm family's size."""
    others = ", ".join(
        m.label for name, m in METRICS.items() if m.label not in primary and name not in NO_FAMILY
    )
    text = (
        f"Primary metric: {' and '.join(primary)}; secondary: {others}. "
        "Each arm is compared with the baseline on each: "
        "Δ = mean over seeds of the arm − mean over seeds of the baseline, seeds paired by value. "
        "Its interval and p-value account for both things a repetition would change: the training "
        f"runs (seeds) and the test sentences (a two-level bootstrap: {n_resamples:,} resamples of the "
        "sentence indices, the same for every run, each run's corpus score recomputed from its "
        "per-sentence statistics; the seed level in closed form; Welch's critical values for a "
        "seed variance with n − 1 degrees of freedom beside the sentences' part, calibrated at every "
        "level Holm tests at). Holm–Bonferroni adjusts the comparisons on the primary metric together "
        f"({families.get(PRIMARY, 0)} of them), and the secondary ones ({families.get(SECONDARY, 0)}, "
        "labelled so) as a family of their own: a verdict is 'differs' when the Holm-adjusted p is at "
        "most 0.05 and 'inconclusive' otherwise. The 'simultaneous' interval is at confidence "
        "1 − 0.05/k for a family of k (Bonferroni): the family's intervals hold together, and one "
        "excludes 0 when its p is below 0.05/k. "
        "'detects' is the smallest difference this test (these seeds, these sentences) finds at that "
        f"level with 80 % power; {HOLM_ONLY}; "
        "'better in' counts the paired seeds in which the arm (the effect's level) is better; "
        f"p-values below {P_SHOWN_FLOOR:.4f} are written < {P_SHOWN_FLOOR:.4f}. The "
        "'same test set' table beneath (sacreBLEU's paired bootstrap, one p per seed) only says "
        "whether two outputs differ on these sentences: it is not a verdict."
    )
    if crossed:
        text += (
            " The cells of a crossed group are not compared one by one with the baseline: its main "
            "effects and interactions are (contrasts of cell means, seeds paired, resampled alike), "
            "in the families of their metrics."
        )
    if len(seeds) == 1:
        text += (
            " This sweep has one seed: its comparisons cover test-set variation only and give no "
            "verdict across training runs."
        )
    elif len(seeds) < 3:
        text += (
            " With fewer than 3 seeds, differences smaller than the seed spread cannot be told from noise."
        )
    if any_seed_level_only:
        text += (
            " Runs logged without per-sentence statistics are compared at the seed level only "
            f"({SEEDS_ONLY})."
        )
    return text


def p_cell(v: Verdict) -> str:
    """The comparison's p-value alone (``0.03``, ``≤ 1/10,001``)."""
    return format_p(v.comparison.p, v.comparison.p_floor, name="")


def seeds_cell(v: Verdict) -> str:
    """The paired seeds compared, and each seed left out with why (``2 (seed 3: arm diverged)``)."""
    left = "; ".join(f"seed {seed}: {why}" for seed, why in v.left_out)
    return f"{len(v.comparison.seeds)}" + (f" ({left})" if left else "")


def better_in(c, effect: Contrast | None = None) -> str:
    """The paired effect size: in how many of the paired seeds the arm is better (``2/3 seeds``,
    ``2/3 seeds, 1 tied``); '-' for one seed and for an interaction, which has no better side."""
    if len(c.seeds) < 2 or (effect is not None and effect.kind == INTERACTION):
        return "-"
    return f"{c.better_seeds}/{len(c.seeds)} seeds" + (f", {c.tied_seeds} tied" if c.tied_seeds else "")


def comparison_row(v: Verdict, effect: Contrast | None = None) -> dict:
    """One comparison as a row of the group's table of comparisons (of a factorial group's
    effects, with ``effect``: its kind, and its two parts)."""
    c, m = v.comparison, METRICS[v.comparison.metric]
    head = {"setting": v.setting} if effect is None else {"effect": v.setting, "kind": effect.kind}
    parts = "baseline → arm" if effect is None else "reference → level"
    signed = effect is not None and effect.kind == INTERACTION
    return head | {
        "metric": m.label if v.family_name == PRIMARY else f"{m.label} ({v.family_name})",
        parts: Number(f"{number(c.baseline, m.digits, signed)} → {number(c.arm, m.digits, signed)}"),
        "Δ [95 % CI]": Number(f"{number(c.delta, m.digits, True)} {interval(v.interval, m.digits)}"),
        "simultaneous": Number(interval(v.simultaneous, m.digits)),
        "p (Holm)": Number(
            MISSING if v.word == CONFOUNDED else f"{p_cell(v)} ({format_p(v.p_adjusted, name='')})"
        ),
        "seeds": seeds_cell(v),
        "better in": better_in(c, effect),
        "verdict": verdict_cell(v),
        "detects": detectable_cell(v),
        "to resolve": seeds_to_resolve(v),
    }


def same_test_set_row(v: Verdict, effect: Contrast | None = None) -> dict | None:
    """A comparison's per-seed sacreBLEU paired-bootstrap p-values, a diagnostic of whether two
    outputs differ on these sentences (not of the verdict), kept apart from the verdicts; None
    where the metric has no per-sentence statistics."""
    c = v.comparison
    if not c.same_test_set:
        return None
    floor = 1 / (c.n_resamples + 1)
    per_seed = zip(c.seeds, c.same_test_set, strict=True)
    head = {"setting": v.setting} if effect is None else {"effect": v.setting}
    seeds = "; ".join(f"seed {s}: {format_p(p, floor, '')}" for s, p in per_seed)
    return head | {"metric": METRICS[c.metric].label, "p per seed": seeds}


def group_finding(sentences: list[str], members, summary, keys: list[str], flagged: dict[str, str]) -> str:
    """The group's finding from the sentences of its verdicts on the primary metrics, plus
    divergences, the budget's share in the result and, for an architecture comparison,
    convergence and time."""
    parts = list(sentences)
    if not sentences:
        parts.append("no setting has a finished run to compare with a finished baseline run")
    diverged = members[members["status"] == "diverged"]
    for setting, group in diverged.groupby("setting", sort=False):
        steps = ", ".join(str(int(s)) for s in group["diverged_step"].dropna())
        total = (members["setting"] == setting).sum()
        parts.append(
            f"{len(group)} of {total} {setting} runs diverged" + (f" (at update {steps})" if steps else "")
        )
    done = members[members["status"].isin(record.DONE)]
    if hardware.confounded(done):
        parts.append(
            f"its runs trained on different hardware ({hardware.kinds_text(done)}): a comparison "
            "across them is confounded by hardware and gets no verdict"
        )
    elif hardware.mixed(done):
        parts.append(
            f"its runs trained on different CPUs, all in fp32 ({hardware.kinds_text(done)}): they "
            "compute alike, so the comparisons stand, but their times do not compare"
        )
    finished = members[members["status"] == "finished"]["run_id"].tolist()
    if budget.most_flagged(finished, flagged):
        parts.append(
            f"{sum(r in flagged for r in finished)} of {len(finished)} runs were {budget.STILL_IMPROVING}: "
            "this compares what the budget lets each setting reach, not the settings at convergence"
        )
    if "model.arch" in keys and {"epochs_to_90pct_mean", "train_seconds_mean"} <= set(summary.columns):
        parts.append(
            "; ".join(
                f"{s} reached 90 % of its best validation BLEU after {r.epochs_to_90pct_mean:.1f} epochs "
                f"and trained {r.train_seconds_mean / 60:.1f} min"
                for s, r in summary.set_index("setting").iterrows()
                if not pd.isna(r.epochs_to_90pct_mean)
            )
        )
    return "; ".join(p for p in parts if p) + "."


def tokenizers_text(trials: pd.DataFrame) -> str:
    """The BLEU tokenizers the runs' signatures name (``tok:13a`` -> ``tok 13a``)."""
    signatures = trials["bleu_signature"].dropna() if "bleu_signature" in trials else pd.Series(dtype=str)
    found = sorted({part for sig in signatures for part in sig.split("|") if part.startswith("tok:")})
    return ", ".join(t.replace(":", " ") for t in found) or "tok 13a"


def sequential_text(looks: list[int]) -> str:
    """The method of a sequential design, for the report's method section."""
    return (
        f"Seeds were added look by look (at {', '.join(map(str, looks))} seeds) only to comparisons "
        f"still undecided: each comparison's level is spent over its looks (f(t) = t^{SPENDING_EXPONENT:g}, "
        "t its seeds over the most), its sequential p is its least p over what each look spent, and "
        "Holm's procedure over those decides the primary family at every look (family-wise error ≤ α "
        "over comparisons and looks); a comparison whose power at the most seeds (its estimate taken "
        f"as the truth) fell below {FUTILITY_POWER:.0%} stopped as futile, one with fewer than 2 seed pairs "
        "(its runs diverged) as unpaired, and one the design's max_runs left no room for at its last "
        "look. The primary verdicts are this procedure's; the interval beside each is its last look's "
        "repeated confidence interval."
    )
