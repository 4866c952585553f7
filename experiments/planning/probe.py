"""How fast this machine trains and decodes one model shape, measured in about a second.

A plan's time estimate is only as good as the rate it divides by, and that rate varies by 2x
between CPU kinds and precisions at equal peak (bf16 speeds up the matmuls, not the rest of
an update), and by 10-20x where bf16 is emulated. So ``ablab plan`` measures instead of assuming:
for each distinct model shape (model, batch, precision, threads) :func:`probe` runs real
updates of the real trainer on the corpus's first batches (one warm-up, then as many as last
:data:`TIMED_SECONDS`, at most :data:`MAX_UPDATES`) and :data:`DECODE_STEPS` greedy decoding
steps of a batch of validation sentences. Decoding is counted as
:attr:`ablab.trainer.model.flops.FlopsProfile.decode_step_flops` per sentence and step. A shape left
unmeasured gets the measured shapes' rates as shares of this machine's peak
(:func:`rates_by_mfu`).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ablab.trainer.build import Corpus
from ablab.trainer.config.schema import Config
from ablab.trainer.evaluation.decode import greedy
from ablab.trainer.hardware.device import cpu_threads
from ablab.trainer.hardware.precision import compute_context
from ablab.trainer.run import build_trainer

TIMED_SECONDS = 0.3
MAX_UPDATES = 3
DECODE_STEPS = 8


@dataclass(frozen=True)
class Rates:
    """What this machine sustains for one model shape, in FLOP/s."""

    train: float  # whole updates: forward, backward, clipping, optimizer step
    decode: float  # greedy decoding, at decode_step_flops per sentence and step
    measured: bool = True  # False: assumed, or carried over from measured shapes


def shape_key(config: Config, precision: str, threads: int) -> str:
    """What a probe's result depends on: the model, the batch, the precision and the threads."""
    batch = f"{config.data.max_tokens}x{config.train.accum_steps}"
    return f"{config.model.model_dump_json()}|{batch}|{precision}|{threads}"


def probe(config: Config, corpus: Corpus, device: torch.device, precision: str, threads: int) -> Rates:
    """Time real updates (one warm-up, then :data:`TIMED_SECONDS` of them) and :data:`DECODE_STEPS`
    greedy steps of ``config``'s model on ``corpus``, in ``precision`` on ``threads`` threads."""
    with cpu_threads(threads), tempfile.TemporaryDirectory() as workdir:
        trainer = build_trainer(config, corpus, device, Path(workdir), precision=precision)
        batches, accum = trainer.epoch_batches(0), config.train.accum_steps
        groups = [batches[i : i + accum] for i in range(0, len(batches), accum)][: MAX_UPDATES + 1]
        trainer.update(groups[0])
        flops, started = 0.0, time.perf_counter()
        for group in groups[1:]:
            flops += trainer.update(group)["step_flops"]
            if time.perf_counter() - started >= TIMED_SECONDS:
                break
        train = flops / (time.perf_counter() - started)
        rows = min(config.eval.batch_sentences, len(corpus.val.sources))
        batch = corpus.val.encoded.collate(torch.arange(rows).numpy()).to(device)
        limits = torch.full_like(batch.src_lens, DECODE_STEPS)  # an untrained model runs to them
        trainer.model.eval()
        with compute_context(device, precision):
            greedy(trainer.model, batch.src, batch.src_lens, limits)  # warm-up
            started = time.perf_counter()
            greedy(trainer.model, batch.src, batch.src_lens, limits)
            seconds = time.perf_counter() - started
    return Rates(train, trainer.profile.decode_step_flops * rows * DECODE_STEPS / seconds)


def rates_by_mfu(measured: list[tuple[Rates, float]], peak: float) -> Rates:
    """Rates for a shape that was not probed: the mean share of the peak that the probed shapes
    reached (``measured`` pairs each one's rates with its peak), at this shape's ``peak``."""
    train = sum(r.train / p for r, p in measured) / len(measured)
    decode = sum(r.decode / p for r, p in measured) / len(measured)
    return Rates(train * peak, decode * peak, measured=False)
