"""What a sweep will cost, before it runs: parameters, training FLOPs and an estimated time.

Parameters are counted on a model built on the meta device (no memory, no init). FLOPs use
the convention of :mod:`trainer.flops` summed over every training pair's real BPE lengths,
so an epoch's FLOPs are exact under that convention; the run's total multiplies by the
epochs its limits allow (a step limit as a fraction of an epoch). Time is those FLOPs over an
assumed sustained rate: this machine's measured peak times an MFU (0.35 by default, what
benchmarks/throughput.py measures for the baseline on a 2-core CPU), or a rate given outright.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments.spec import Plan, Trial
from trainer.batching import token_batches
from trainer.build import Corpus, build_corpus, build_model, count_parameters
from trainer.config import flatten
from trainer.device import peak_flops
from trainer.run_length import planned_epochs

DEFAULT_MFU = 0.35


@dataclass(frozen=True)
class Estimate:
    params: int
    flops_per_epoch: float
    epochs: float | None  # None: limited by wall-clock minutes only
    flops: float | None
    seconds: float | None


def _epochs(trial: Trial, corpus: Corpus) -> float | None:
    config = trial.config
    batches = token_batches(
        corpus.train.src_lens, corpus.train.tgt_lens, config.data.max_tokens, config.train.seed, 0
    )
    return planned_epochs(config, len(batches))


def estimate(plan: Plan, flops_per_second: float | None = None, mfu: float = DEFAULT_MFU) -> list[Estimate]:
    """One :class:`Estimate` per trial of ``plan`` (data is read and tokenized once per setting)."""
    corpora: dict[tuple[str, tuple[str, ...]], Corpus] = {}
    out = []
    for trial in plan.trials:
        cfg = trial.config
        setting = (cfg.data.model_dump_json(), cfg.eval.test_sets)
        if setting not in corpora:
            corpora[setting] = build_corpus(cfg.data, cfg.eval)
        corpus = corpora[setting]
        with torch.device("meta"):
            model = build_model(cfg.model, corpus.vocabs)
        per_epoch = model.flops_profile().step_flops(corpus.train.src_lens, corpus.train.tgt_lens)
        epochs = _epochs(trial, corpus)
        rate = flops_per_second or mfu * peak_flops(torch.device("cpu"), cfg.train.precision)
        flops = per_epoch * epochs if epochs is not None else None
        seconds = flops / rate if flops is not None else None
        if cfg.train.max_minutes is not None:
            seconds = min(seconds, 60 * cfg.train.max_minutes) if seconds else 60 * cfg.train.max_minutes
            flops = seconds * rate
        out.append(Estimate(count_parameters(model), per_epoch, epochs, flops, seconds))
    return out


def plan_records(plan: Plan, estimates: list[Estimate]) -> list[dict]:
    """JSON-ready rows: name, hash, params, flops, seconds, groups, overrides and the flat config."""
    return [
        {
            "name": t.name,
            "hash": t.hash,
            "params": e.params,
            "flops": e.flops,
            "flops_per_epoch": e.flops_per_epoch,
            "est_seconds": e.seconds,
            "groups": list(t.groups),
            "seed": t.seed,
            "resources": {"cpus": t.resources.cpus, "gpus": t.resources.gpus},
            "overrides": t.overrides,
            "config": flatten(t.config),
        }
        for t, e in zip(plan.trials, estimates, strict=True)
    ]


def search_runs(plan: Plan) -> tuple[int, str]:
    """A searched spec's number of runs, and a line saying how they come about."""
    first, rest = plan.spec.seeds[0], plan.spec.seeds[1:]
    points = sum(t.seed == first for t in plan.trials)
    runs = points * plan.spec.search.trials + len(plan.trials) - points
    then = f", then seed(s) {', '.join(map(str, rest))} at each point's best values" if rest else ""
    return (
        runs,
        f"search: {plan.spec.search.trials} Optuna samples per point with seed {first}{then}: {runs} runs",
    )
