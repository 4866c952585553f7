"""The question an ablation group asks, in words, from the config keys it varies: the heading of
its report section and its line in the MLflow experiment's description. Plain data, no statistics,
so that a sweep's driver names its groups without loading the analysis."""

from __future__ import annotations

QUESTIONS = {
    "loss.label_smoothing": "Does label smoothing change translation quality and calibration?",
    "schedule.warmup_steps": "Does the Transformer need learning-rate warmup?",
    "model.heads": "How does the number of attention heads at a fixed d_model affect BLEU?",
    "model.layers": "How does depth trade parameters for BLEU?",
    "schedule.name": "Which learning-rate schedule trains best in the same budget?",
    "model.arch": "Transformer or GRU seq2seq with attention: quality, convergence and training time?",
    "model.norm": "Does layer-norm placement (pre-LN or post-LN) change BLEU?",
}
"""The question of a group that varies one factor led by a known key."""
TOPICS = {
    "loss.label_smoothing": "label smoothing",
    "schedule.warmup_steps": "learning-rate warmup",
    "model.heads": "the number of attention heads",
    "model.layers": "depth",
    "schedule.name": "the learning-rate schedule",
    "model.arch": "the architecture",
    "model.norm": "layer-norm placement",
}


def question(factors: list[list[str]], group: str) -> str:
    """The question a group asks, from every config key it varies, ``factors`` being the keys
    that move together (a zip's keys are one factor). One factor led by a known key: its known
    question, naming the keys that move with it; several factors: how they act alone and
    together; otherwise a question naming every key."""
    if not factors:
        return f"What does {group} change?"
    if len(factors) == 1:
        lead, *rest = factors[0]
        moving = f" ({', '.join(rest)} moving with {lead})" if rest else ""
        if lead in QUESTIONS:
            return QUESTIONS[lead] + moving
        return f"What does changing {lead} do?" if not rest else f"What does changing {lead}{moving} do?"
    topics = [TOPICS.get(f[0], " + ".join(f)) for f in factors]
    listed = ", ".join(topics[:-1]) + f" and {topics[-1]}"
    return f"How do {listed} affect the results, each alone and together?"
