"""What a sweep will cost, before it runs: parameters, training FLOPs, precision and time.

Parameters are counted on a model built on the meta device (no memory, no init). FLOPs use
the convention of :mod:`ablab.trainer.model.flops` summed over every training pair's real BPE lengths,
so an epoch's FLOPs are exact under that convention; the run's total multiplies by the
epochs its limits allow (a step limit as a fraction of an epoch).

Time is estimated on this machine, for the precision each trial's ``train.precision``
resolves to here, from rates measured on it (:mod:`ablab.experiments.planning.probe`): a trial's time is

    training FLOPs / measured training rate
    + validations × (teacher-forced validation FLOPs / that rate + greedy decoding steps)
    + the test sets' beam decoding + :data:`TRIAL_OVERHEAD_SECONDS` (+ :data:`FIGURES_SECONDS`)

where decoding costs the probe's seconds per step and sentence, one step per target token of
each batch's longest reference. A run limited by minutes trains for those minutes. A sweep's
time places the trials in order on as many lanes as run at once (:func:`sweep_seconds`).
Shapes the probing budget leaves unmeasured, and ``--mfu``, use an MFU times this machine's
peak; ``--tflops`` a rate given outright. A GPU trial planned where PyTorch finds no CUDA
device has no time estimate unless ``--tflops`` gives the GPU's rate.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from ablab.experiments.planning.probe import Rates, probe, rates_by_mfu, shape_key
from ablab.experiments.spec.expand import Plan, Trial
from ablab.trainer.build import Corpus, build_corpus, build_model, count_parameters
from ablab.trainer.config.schema import Config, flatten
from ablab.trainer.data.batching import sorted_batches, token_batches
from ablab.trainer.evaluation.decode import max_lengths
from ablab.trainer.evaluation.evaluate import EvalSet
from ablab.trainer.hardware.peak import peak_flops
from ablab.trainer.hardware.precision import emulation_note, resolve
from ablab.trainer.model.flops import FlopsProfile
from ablab.trainer.optim.run_length import planned_epochs

DEFAULT_MFU = 0.35
"""MFU assumed where nothing was measured (``--mfu``, or no probing budget)."""
PROBE_BUDGET_SECONDS = 4.0
TRIAL_OVERHEAD_SECONDS = 4.0
"""A trial's own start and end besides training: its worker, MLflow run, data and model setup
(``benchmarks/sweep_overhead.py``: 4.7 % orchestration + 3.0 % setup of one-minute trials)."""
FIGURES_SECONDS = 3.0
"""The run figures a trial draws at its end (``run_figures``)."""
RAY_START_SECONDS = 5.0


@dataclass(frozen=True)
class Estimate:
    params: int
    flops_per_epoch: float
    epochs: float | None  # None: limited by wall-clock minutes only
    flops: float | None
    seconds: float | None  # the whole trial (None: no rate for its device here)
    precision: str  # train.precision as it resolves here ('auto' for a GPU this machine lacks)
    emulated: bool  # that precision is emulated here (bf16 on a CPU without native bf16)
    train_flops_per_s: float | None  # the training rate planned with
    measured: bool  # the rate was measured for this trial's shape


def _device_here(trial: Trial) -> torch.device | None:
    """The device the trial would train on if it ran on this machine; None: a GPU it lacks."""
    wants_gpu = trial.resources.gpus > 0 or trial.config.train.device == "cuda"
    if wants_gpu and trial.config.train.device != "cpu":
        return torch.device("cuda") if torch.cuda.is_available() else None
    return torch.device("cpu")


def estimate(
    plan: Plan,
    flops_per_second: float | None = None,
    mfu: float | None = None,
    probe_budget: float = PROBE_BUDGET_SECONDS,
    trials: list[Trial] | None = None,
) -> list[Estimate]:
    """One :class:`Estimate` per trial of ``plan`` (or of ``trials``, some of its trials): data
    read once per setting, each distinct shape probed (largest first) while ``probe_budget``
    seconds last, unless a rate is given (``flops_per_second`` outright, or ``mfu`` times this
    machine's peak)."""
    corpora: dict[tuple[str, tuple[str, ...]], Corpus] = {}
    shapes = []
    for trial in plan.trials if trials is None else trials:
        cfg = trial.config
        setting = (cfg.data.model_dump_json(), cfg.eval.test_sets)
        if setting not in corpora:
            corpora[setting] = build_corpus(cfg.data, cfg.eval)
        corpus = corpora[setting]
        with torch.device("meta"):
            model = build_model(cfg.model, corpus.vocabs)
        profile = model.flops_profile()
        per_epoch = profile.step_flops(corpus.train.src_lens, corpus.train.tgt_lens)
        shapes.append(_Shape(trial, corpus, profile, count_parameters(model), per_epoch, _device_here(trial)))
    rates = _rates(shapes, flops_per_second, mfu, probe_budget)
    out = []
    for shape, rate in zip(shapes, rates, strict=True):
        cfg = shape.trial.config
        epochs = planned_epochs(cfg, len(_batches(cfg, shape.corpus)))
        seconds, trained = None, epochs
        if rate is not None:
            seconds, trained = _trial_seconds(shape, epochs, rate, plan.spec.run_figures)
        flops = shape.per_epoch * trained if trained is not None else None
        out.append(
            Estimate(
                shape.params,
                shape.per_epoch,
                epochs,
                flops,
                seconds,
                shape.precision,
                shape.device is not None and emulation_note(shape.precision, shape.device) is not None,
                rate.train if rate else None,
                bool(rate and rate.measured),
            )
        )
    return out


@dataclass(frozen=True)
class _Shape:
    """A trial as the estimate sees it."""

    trial: Trial
    corpus: Corpus
    profile: FlopsProfile
    params: int
    per_epoch: float  # training FLOPs of one epoch
    device: torch.device | None  # where it would train on this machine (None: a GPU it lacks)

    @property
    def precision(self) -> str:
        """``train.precision`` as it resolves here (as written where the device is not here)."""
        choice = self.trial.config.train.precision
        return resolve(choice, self.device) if self.device is not None else choice

    @property
    def threads(self) -> int:
        return self.trial.config.train.threads or torch.get_num_threads()

    @property
    def key(self) -> str:
        return shape_key(self.trial.config, self.precision, self.threads)

    def peak(self) -> float:
        return peak_flops(self.device, self.precision, self.threads)


def _batches(cfg: Config, corpus: Corpus) -> list[np.ndarray]:
    return token_batches(corpus.train.src_lens, corpus.train.tgt_lens, cfg.data.max_tokens, cfg.train.seed, 0)


def _rates(shapes: list[_Shape], flops_per_second, mfu, probe_budget) -> list[Rates | None]:
    """Each trial's rates (None: its device is not here and no rate was given): given outright,
    measured per shape (the largest share of the sweep's FLOPs first, while the budget lasts),
    or the measured shapes' share of the peak (else ``mfu``, else :data:`DEFAULT_MFU`)."""
    if flops_per_second:
        return [Rates(flops_per_second, flops_per_second, measured=False)] * len(shapes)
    groups: dict[str, list[_Shape]] = {}
    for shape in shapes:
        if shape.device is not None:
            groups.setdefault(shape.key, []).append(shape)
    measured: dict[str, Rates] = {}
    spent = last = 0.0  # the next probe is taken to last as long as the last (largest first)
    for key, members in sorted(groups.items(), key=lambda kv: -sum(s.per_epoch for s in kv[1])):
        if mfu is not None or probe_budget <= 0 or (measured and spent + last > probe_budget):
            break
        first, started = members[0], time.monotonic()
        measured[key] = probe(first.trial.config, first.corpus, first.device, first.precision, first.threads)
        last = time.monotonic() - started
        spent += last
    peaks = {key: members[0].peak() for key, members in groups.items()}
    shares = [(r, peaks[key]) for key, r in measured.items()]
    by_key = {
        key: measured.get(key)
        or (rates_by_mfu(shares, peaks[key]) if shares else _assumed(mfu or DEFAULT_MFU, peaks[key]))
        for key in groups
    }
    return [by_key[s.key] if s.device is not None else None for s in shapes]


def _assumed(mfu: float, peak: float) -> Rates:
    """An MFU assumed for every FLOP, training and decoding (optimistic for decoding)."""
    return Rates(mfu * peak, mfu * peak, measured=False)


def _trial_seconds(shape: _Shape, epochs: float | None, rate: Rates, figures: bool) -> tuple[float, float]:
    """The trial's seconds from start to end, and the epochs it trains."""
    cfg, corpus, profile = shape.trial.config, shape.corpus, shape.profile
    validation = _forward_seconds(profile, corpus.val, rate) + _decode_seconds(
        corpus.val.head(cfg.eval.val_sentences), cfg, 1, profile, rate
    )
    epoch_seconds = shape.per_epoch / rate.train
    if epochs is None:  # minutes alone: the epochs that fit, each with its validation
        budget = 60 * cfg.train.max_minutes
        epochs = budget / (epoch_seconds + validation)
        training = budget + validation  # the limit is checked between updates; a last validation
    else:
        if cfg.train.max_minutes is not None:
            epochs = min(epochs, 60 * cfg.train.max_minutes / (epoch_seconds + validation))
        training = epochs * epoch_seconds + math.ceil(epochs) * validation
    tests = list(corpus.tests.values())
    evaluation = sum(_decode_seconds(t, cfg, cfg.eval.beam_size, profile, rate) for t in tests)
    evaluation += _forward_seconds(profile, tests[0], rate) if tests else 0.0
    overhead = TRIAL_OVERHEAD_SECONDS + (FIGURES_SECONDS if figures else 0.0)
    return training + evaluation + overhead, epochs


def _forward_seconds(profile: FlopsProfile, data: EvalSet, rate: Rates) -> float:
    """Teacher-forced scoring: a third of a training step's FLOPs (forward only) at its rate."""
    return profile.step_flops(data.encoded.src_lens, data.encoded.tgt_lens) / 3 / rate.train


def _decode_seconds(data: EvalSet, cfg: Config, beam: int, profile: FlopsProfile, rate: Rates) -> float:
    """Decoding ``data`` in batches, each running until its longest reference ends (or its limit)."""
    steps = 0
    src, tgt = data.encoded.src_lens, data.encoded.tgt_lens
    for index in sorted_batches(src, cfg.eval.batch_sentences):
        limit = int(max_lengths(torch.as_tensor(src[index]), cfg.eval.max_len_a, cfg.eval.max_len_b).max())
        steps += min(limit, int(tgt[index].max()) + 1) * len(index) * beam
    return steps * profile.decode_step_flops / rate.decode


def lanes(plan: Plan, cpus: int | None = None, gpus: int | None = None) -> int:
    """Trials that run at once on this machine: as many as its CPUs (and GPUs) hold, at most
    the spec's ``max_concurrent``."""
    resources = plan.trials[0].resources
    cpus = cpus if cpus is not None else os.cpu_count() or 1
    gpus = gpus if gpus is not None else torch.cuda.device_count()
    fits = [int(cpus // resources.cpus)] + ([int(gpus // resources.gpus)] if resources.gpus else [])
    return max(1, min([*fits, plan.spec.max_concurrent or math.inf]))


def sweep_seconds(seconds: list[float], lanes: int) -> float:
    """Wall time of trials started in order, each on the first lane to come free, plus Ray's start."""
    return makespan(seconds, lanes) + RAY_START_SECONDS


def makespan(seconds: list[float], lanes: int) -> float:
    """Wall time of work items taken in order, each by the first of ``lanes`` to come free."""
    free = [0.0] * max(lanes, 1)
    for s in seconds:
        free[free.index(min(free))] += s
    return max(free)


def plan_records(plan: Plan, estimates: list[Estimate]) -> list[dict]:
    """JSON-ready rows: name, hash, params, flops, seconds, precision, groups, overrides and the
    flat config."""
    return [
        {
            "name": t.name,
            "hash": t.hash,
            "params": e.params,
            "flops": e.flops,
            "flops_per_epoch": e.flops_per_epoch,
            "est_seconds": e.seconds,
            "precision": e.precision,
            "precision_emulated": e.emulated,
            "planned_flops_per_s": e.train_flops_per_s,
            "rate_measured": e.measured,
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
    first, rest = plan.spec.initial_seeds[0], plan.spec.initial_seeds[1:]
    points = sum(t.seed == first for t in plan.trials)
    runs = points * plan.spec.search.trials + len(plan.trials) - points
    then = f", then seed(s) {', '.join(map(str, rest))} at each point's best values" if rest else ""
    return (
        runs,
        f"search: {plan.spec.search.trials} Optuna samples per point with seed {first}{then}: {runs} runs",
    )
