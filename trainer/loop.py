"""The training loop: set lr -> forward/backward (accumulated) -> clip -> step -> log ->
validate and checkpoint each epoch. Everything it needs arrives built (see :mod:`ablab.trainer.run`).

Resuming is exact: a checkpoint holds the model, optimizer, grad scaler, RNG state and the
:class:`Progress` (epoch and batch position, clocks, validation history); the batches of an
epoch are a pure function of (seed, epoch), so the loop skips the batches already done and
continues with the same random stream an uninterrupted run would have had.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ablab.trainer import checkpoint
from ablab.trainer.config.schema import EvalConfig, TrainConfig
from ablab.trainer.data.batching import EncodedSplit, token_batches
from ablab.trainer.data.tokenizer import PAD, Vocabularies
from ablab.trainer.evaluation.evaluate import EvalSet, bleu_metrics, teacher_forced, translate
from ablab.trainer.hardware.precision import compute_context
from ablab.trainer.model.flops import FlopsProfile
from ablab.trainer.optim.losses import Loss
from ablab.trainer.optim.optimizers import set_lr
from ablab.trainer.optim.run_length import updates_in_time
from ablab.trainer.tracking import record
from ablab.trainer.tracking.tracker import Tracker

KEEP_CHECKPOINTS = 2


class Reporter(Protocol):
    """Hears about progress: a terminal progress bar, or Ray Tune's ``tune.report``."""

    def on_start(self, device: torch.device, precision: str) -> None: ...

    def on_step(self, progress: Progress, metrics: dict[str, float]) -> None: ...

    def on_epoch(self, progress: Progress, metrics: dict[str, float], checkpoint_dir: Path) -> None: ...


class NullReporter:
    def on_start(self, device, precision):
        pass

    def on_step(self, progress, metrics):
        pass

    def on_epoch(self, progress, metrics, checkpoint_dir):
        pass


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    step: int = 0  # optimizer updates done
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch done
    batches_in_epoch: int = 0
    elapsed_seconds: float = 0.0  # wall clock of training and validation: the max_minutes clock
    train_seconds: float = 0.0  # forward, backward and update only
    tgt_tokens: int = 0
    flops: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per validation
    best_bleu: float = -1.0
    best_epoch: float = 0.0
    run_id: str | None = None
    done: bool = False
    status: str = "running"
    precision: str = ""  # the resolved precision it trained in ("bf16 + fp32": resumed in another)
    device_kind: str = ""  # what it trained on (ablab.trainer.hardware.device.device_kind), likewise
    window_tokens: int = 0  # the updates since the last logged one: their target tokens,
    window_loss: float = 0.0  # summed smoothed loss, summed NLL
    window_nll: float = 0.0
    window_seconds: float = 0.0  # and seconds in forward, backward and update

    def logged_window(self) -> dict[str, float]:
        """The updates since the last logged one (the logged one included) as one: loss and NLL
        per target token, Σ loss_i / Σ tokens_i (each update's weighted by its tokens), and target
        tokens per second, Σ tokens_i / Σ seconds_i. Starts the next window."""
        tokens, seconds = self.window_tokens, self.window_seconds
        means = {
            "train_loss": self.window_loss / tokens,
            "train_nll": self.window_nll / tokens,
            "tgt_tokens_per_s": tokens / seconds if seconds else 0.0,
        }
        self.window_tokens, self.window_loss, self.window_nll, self.window_seconds = 0, 0.0, 0.0, 0.0
        return means

    def record_hardware(self, precision: str, device_kind: str) -> None:
        """Add this attempt's precision and device kind to those the run trained in before."""
        self.precision = _joined(self.precision, precision)
        self.device_kind = _joined(self.device_kind, device_kind)

    @property
    def epochs(self) -> float:
        """Epochs done, fractional when training stopped inside an epoch."""
        return self.epoch + (self.batch / self.batches_in_epoch if self.batches_in_epoch else 0.0)


def _joined(before: str, now: str) -> str:
    return now if not before else before if now in before.split(" + ") else f"{before} + {now}"


@dataclass
class Trainer:
    """The loop over built objects (:func:`ablab.trainer.run.build_trainer` builds them, each from
    its config section); of the config it reads only its own sections, ``train`` and ``evaluation``."""

    train: TrainConfig  # how long, how often to log and checkpoint, when to stop
    evaluation: EvalConfig  # what validation decodes and scores
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: Callable[..., float]  # lr(step, total=None): total where the time budget sets it
    loss: Loss  # summed smoothed loss and NLL of the output projection (ablab.trainer.optim.losses)
    clip_norm: float  # the gradient norm clipped to (optim.clip_norm; inf: none)
    max_tokens: int  # the token budget of a batch (data.max_tokens)
    config_hash: str  # the run's identity, kept in every checkpoint
    train_data: EncodedSplit
    val_data: EvalSet
    vocabs: Vocabularies
    device: torch.device
    precision: str  # train.precision resolved on the device (ablab.trainer.hardware.precision)
    profile: FlopsProfile
    workdir: Path
    tracker: Tracker
    reporter: Reporter
    ends_with_time: bool = False  # the schedule's last update is where train.max_minutes ends
    progress: Progress = field(default_factory=Progress)

    def __post_init__(self) -> None:
        self.forward = torch.compile(self.model, dynamic=True) if self.train.compile else self.model
        self.model.grad_checkpointing = self.train.grad_checkpointing
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self._src_lens, self._tgt_lens = self.train_data.src_lens, self.train_data.tgt_lens
        self._clock_start = time.monotonic()  # reset by run(), which counts resumed time too

    @property
    def checkpoint_dir(self) -> Path:
        return self.workdir / "checkpoints"

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        return token_batches(self._src_lens, self._tgt_lens, self.max_tokens, self.train.seed, epoch)

    def run(self) -> str:
        """Train until a limit; returns the status, 'finished' or 'diverged'."""
        cfg, p = self.train, self.progress
        self.model.train()
        self._clock_start = time.monotonic() - p.elapsed_seconds
        self.reporter.on_start(self.device, self.precision)
        while not p.done:
            batches = self.epoch_batches(p.epoch)
            p.batches_in_epoch = len(batches)
            while p.batch < len(batches) and not p.done:
                group = batches[p.batch : p.batch + cfg.accum_steps]
                metrics = self.update(group)
                p.batch += len(group)
                p.elapsed_seconds = time.monotonic() - self._clock_start
                if self._diverging(metrics):
                    self._diverged(metrics)
                    return record.DIVERGED
                if p.step % cfg.log_every == 0:
                    logged = metrics | p.logged_window()
                    self.tracker.log_metrics(record.train_record(logged, p.epochs), step=p.step)
                    self.reporter.on_step(p, logged)
                p.done = self._limit_reached()
                if cfg.checkpoint_every and p.step % cfg.checkpoint_every == 0 and p.batch < len(batches):
                    self._save()
            if p.batch >= len(batches):
                p.epoch, p.batch = p.epoch + 1, 0
            self._end_of_epoch()
        return record.FINISHED

    def update(self, group: list[np.ndarray]) -> dict[str, float]:
        """One optimizer update over the batches of ``group``; loss normalized by their tokens."""
        p = self.progress
        started = time.perf_counter()
        lr = self.schedule(p.step + 1, self._last_update_in_time())
        set_lr(self.optimizer, lr)
        batches = [self.train_data.collate(index).to(self.device) for index in group]
        n_tokens = sum(b.n_tgt_tokens for b in batches)
        loss_sum = nll_sum = 0.0
        for batch in batches:
            with compute_context(self.device, self.precision):
                hidden = self.forward(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_lens)
                real = batch.tgt_out != PAD
                loss, nll = self.loss(hidden[real], self.model.output.weight, batch.tgt_out[real])
            self.scaler.scale(loss / n_tokens).backward()
            loss_sum, nll_sum = loss_sum + loss.detach(), nll_sum + nll.detach()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        flops = sum(
            self.profile.step_flops(b.src_lens.cpu().numpy(), b.tgt_lens.cpu().numpy()) for b in batches
        )
        loss_sum, nll_sum = float(loss_sum), float(nll_sum)
        p.step += 1
        p.train_seconds += seconds
        p.tgt_tokens += n_tokens
        p.flops += flops
        p.window_tokens += n_tokens
        p.window_loss += loss_sum
        p.window_nll += nll_sum
        p.window_seconds += seconds
        return {
            "train_loss": loss_sum / n_tokens,
            "train_nll": nll_sum / n_tokens,
            "lr": lr,
            "grad_norm": float(grad_norm),
            "tgt_tokens_per_s": n_tokens / seconds,
            "step_flops": flops,
        }

    def _last_update_in_time(self) -> int | None:
        """Where a schedule that ends with the time budget ends (None: it knows its last update)."""
        if not self.ends_with_time:
            return None
        budget = 60 * self.train.max_minutes
        return updates_in_time(self.progress.step, self.progress.elapsed_seconds, budget)

    def _diverging(self, metrics: dict[str, float]) -> bool:
        """NaN or inf loss or gradient, or a loss far above a uniform guess's log(V)."""
        if not (math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["grad_norm"])):
            return True
        factor = self.train.divergence_factor
        return factor is not None and metrics["train_loss"] > factor * math.log(self.vocabs.tgt_size)

    def _limit_reached(self) -> bool:
        cfg, p = self.train, self.progress
        return (
            (cfg.epochs is not None and p.epoch >= cfg.epochs)
            or (cfg.max_steps is not None and p.step >= cfg.max_steps)
            or (cfg.max_minutes is not None and p.elapsed_seconds >= 60 * cfg.max_minutes)
        )

    def validate(self) -> dict[str, float]:
        """Teacher-forced validation loss and greedy BLEU (on the first eval.val_sentences)."""
        evaluation = self.evaluation
        tf = teacher_forced(self.model, self.val_data, evaluation, self.device, self.precision)
        subset = self.val_data.head(evaluation.val_sentences)
        hyps = translate(self.model, subset, self.vocabs, evaluation, self.device, self.precision, beam=1)
        self.model.train()
        return {
            "val_loss": tf.nll_per_token,
            "val_ppl": math.exp(min(tf.nll_per_token, 50.0)),
            "val_bleu": bleu_metrics(hyps, subset.references, subset.bleu_tokenize)["bleu"],
        }

    def _end_of_epoch(self) -> None:
        """Validate (at an epoch's end, or where a limit stopped training), keep the best model,
        decide whether training is done (limits count the validation's time), checkpoint, report."""
        cfg, p = self.train, self.progress
        metrics = self.validate()
        p.history.append({"epoch": p.epochs, "step": p.step, "seconds": p.elapsed_seconds, **metrics})
        if metrics["val_bleu"] > p.best_bleu:
            p.best_bleu, p.best_epoch = metrics["val_bleu"], p.epochs
            checkpoint.save(
                self.checkpoint_dir / "best.pt", {"model": self.model.state_dict(), "epoch": p.epochs}
            )
        p.elapsed_seconds = time.monotonic() - self._clock_start
        stale = sum(1 for h in p.history if h["epoch"] > p.best_epoch)
        early_stop = cfg.early_stopping is not None and stale >= cfg.early_stopping
        p.done = p.done or self._limit_reached() or early_stop
        self.tracker.log_metrics(record.validation_record(metrics, p.epochs), step=p.step)
        self._save()
        self.reporter.on_epoch(p, metrics, self.checkpoint_dir)

    def _diverged(self, metrics: dict[str, float]) -> None:
        p = self.progress
        p.done, p.status = True, record.DIVERGED
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        self.tracker.log_metrics(
            {**record.train_record(finite, p.epochs), "run/diverged_step": p.step}, p.step
        )
        self._save()

    def state_dict(self) -> dict[str, Any]:
        return {
            "config_hash": self.config_hash,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "progress": asdict(self.progress),
            "unsent_metrics": self.tracker.unsent_metrics(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.progress = Progress(**state["progress"])

    def _save(self) -> None:
        """Write a resumable checkpoint (with the metrics it covers that the store does not
        have yet), then flush those metrics to the tracker."""
        checkpoint.save(checkpoint.step_path(self.checkpoint_dir, self.progress.step), self.state_dict())
        checkpoint.prune(self.checkpoint_dir, KEEP_CHECKPOINTS)
        self.tracker.flush()
