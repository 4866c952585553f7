"""``train(config)``: one complete run, the function the CLI, Ray Tune and the tests all call.

Order of work, chosen so that bad input leaves nothing behind: build data, vocabularies and
model (any :class:`~ablab.trainer.errors.UserError` is raised here, before a run or a file exists),
resume from the newest valid checkpoint in ``workdir`` if there is one, open the tracking
run (reopening the same run on resume), train, evaluate the best checkpoint on the test
sets, log the artifacts, and write ``result.json`` so that calling again returns at once
(delivering first what the tracking store did not get if it stopped answering).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ablab.trainer import checkpoint
from ablab.trainer.build import Corpus, build_corpus, build_model, count_parameters
from ablab.trainer.config.schema import Config, config_hash, flatten, to_dict
from ablab.trainer.data.batching import token_batches
from ablab.trainer.errors import Unavailable, UserError
from ablab.trainer.evaluation.evaluate import (
    attention_record,
    bleu_metrics,
    sentence_statistics,
    teacher_forced,
    translate,
)
from ablab.trainer.hardware.device import assigned_gpus, describe, device_kind, pick_device
from ablab.trainer.hardware.peak import peak_flops
from ablab.trainer.hardware.precision import emulation_note, resolve
from ablab.trainer.hardware.usage import UsageSampler
from ablab.trainer.loop import NullReporter, Reporter, Trainer
from ablab.trainer.optim.losses import build_loss
from ablab.trainer.optim.optimizers import build_optimizer
from ablab.trainer.optim.run_length import planned_updates, schedule_updates
from ablab.trainer.optim.schedules import build_schedule
from ablab.trainer.tracking import record
from ablab.trainer.tracking.store import git_commit
from ablab.trainer.tracking.tracker import NullTracker, Tracker

SAMPLE_TRANSLATIONS = 20
UNSENT = "unsent_tracking.json"
"""In the work directory: the writes a tracking store that stopped answering did not get."""


@dataclass(frozen=True)
class Result:
    status: str  # 'finished' or 'diverged'
    metrics: dict[str, Any]  # JSON-ready final metrics; see final_metrics()
    run_id: str | None
    workdir: Path


def train(
    config: Config,
    *,
    workdir: Path,
    tracker: Tracker | None = None,
    reporter: Reporter | None = None,
) -> Result:
    """Train and evaluate the model ``config`` describes; resume from ``workdir`` if possible.

    The recipe: build (corpus, model, optimizer, schedule) → resume from the newest valid
    checkpoint → open (or reopen) the tracked run → the training loop → the final evaluation →
    keep the result in ``workdir`` and close the run. A config already finished in ``workdir``
    returns its result at once (delivering what the store missed then)."""
    tracker, reporter = tracker or NullTracker(), reporter or NullReporter()
    workdir = Path(workdir).resolve()
    key = config_hash(config)
    done = _finished(workdir, key)
    if done is not None:
        if (workdir / UNSENT).is_file():  # the store did not answer when this run ended
            tracker.resend(workdir / UNSENT)
        return done
    started = time.monotonic()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    device = pick_device(config.train.device, config.train.precision)
    precision = resolve(config.train.precision, device)
    corpus = build_corpus(config.data, config.eval)
    trainer = build_trainer(config, corpus, device, workdir, tracker, reporter, precision, key)
    skipped, unsent = _resume(trainer, key)
    trainer.progress.record_hardware(precision, device_kind(device))
    with _ended_on_error(tracker):
        run_id = _open_run(tracker, trainer, config, corpus, device, key, skipped)
        tracker.resend_metrics(unsent)  # logged before the checkpoint, maybe never delivered
        setup_seconds = time.monotonic() - started
        usage = UsageSampler(tracker, device, tracker.started_at).start()  # the machine and process
        try:
            status, metrics = _loop_and_evaluate(trainer, config, corpus, device, setup_seconds)
        finally:
            usage.stop()
    result = Result(status, {**metrics, "status": status, "run_id": run_id}, run_id, workdir)
    checkpoint.atomic_write(  # the result is kept here whatever the tracking store does
        workdir / "result.json", json.dumps({"config_hash": key, **result.metrics}, indent=1).encode()
    )
    _close_run(tracker, status, workdir)
    return result


def _open_run(
    tracker: Tracker, trainer: Trainer, config: Config, corpus: Corpus, device, key: str, skipped: list[str]
) -> str:
    """Start (or, resumed, reopen) the tracked run with the config, what was derived from it and
    where it runs; returns its id."""
    batches = len(trainer.epoch_batches(0))
    run_id = tracker.start(
        params={
            **flatten(config),
            "derived.params": count_parameters(trainer.model),
            "derived.batches_per_epoch": batches,
            "derived.planned_updates": planned_updates(config, batches),
            "derived.train_pairs": len(corpus.train),
            "derived.train_pairs_dropped": corpus.train_pairs_dropped,
            "derived.src_vocab": corpus.vocabs.src_size,
            "derived.tgt_vocab": corpus.vocabs.tgt_size,
        },
        tags={
            record.CONFIG_HASH: key,
            record.GIT_COMMIT: git_commit(),
            record.DEVICE: describe(device),
            record.DEVICE_KIND: trainer.progress.device_kind,
            record.PRECISION: trainer.progress.precision,
            record.ASSIGNED_GPUS: assigned_gpus() or "none",
            record.TORCH_VERSION: torch.__version__,
            record.ARCH: config.model.arch,
        },
        run_id=trainer.progress.run_id,
    )
    trainer.progress.run_id = run_id
    if trainer.progress.step:
        tracker.set_tags(
            {
                record.RESUMED_FROM: str(trainer.progress.step),
                record.ATTEMPT_STARTED: f"{time.time():.3f}",
                record.TRAINED_BEFORE: f"{trainer.progress.elapsed_seconds:.3f}",
            }
        )
    note = emulation_note(trainer.precision, device)
    if note:
        print(f"ablab: warning: {note}", file=sys.stderr, flush=True)
        tracker.set_tags({record.PRECISION_NOTE: note})
    if skipped:
        tracker.log_text("\n".join(skipped), f"events/skipped_checkpoints_step{trainer.progress.step}.txt")
    return run_id


def _loop_and_evaluate(trainer: Trainer, config: Config, corpus: Corpus, device, setup_seconds: float):
    """The training loop (unless the run already diverged), then the final evaluation."""
    if trainer.progress.status != record.DIVERGED:
        trainer.progress.status = trainer.run()
    status = trainer.progress.status
    params = count_parameters(trainer.model)
    return status, final_metrics(trainer, corpus, params, device, config, status, setup_seconds)


@contextlib.contextmanager
def _ended_on_error(tracker: Tracker):
    """A stop or a crash once the run is open ends it as killed or failed before it propagates:
    a run left running would look live forever, and its delivery thread would go on."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or Ray Tune stopping the trial early
        if tracker.run_id is not None:
            tracker.end(record.KILLED, wait=False)
        raise
    except BaseException as exc:
        if tracker.run_id is not None:
            tracker.set_tags({record.ERROR: f"{type(exc).__name__}: {exc}"[:1000]})
            tracker.end(record.FAILED, wait=False)
        raise


def _close_run(tracker: Tracker, status: str, workdir: Path) -> None:
    """End the run; if the tracking store never answers, keep what it did not get in
    ``workdir`` (the next :func:`train` of this config there delivers it) and say so."""
    try:
        tracker.end(status)
    except Unavailable as exc:
        tracker.save_pending(workdir / UNSENT)
        raise Unavailable(
            f"{exc} The results are kept in {workdir} (result.json, checkpoints/) and the undelivered "
            f"writes in {UNSENT}; run the same command again once the store answers to deliver them."
        ) from None


def build_trainer(
    config: Config,
    corpus: Corpus,
    device: torch.device,
    workdir: Path,
    tracker: Tracker | None = None,
    reporter: Reporter | None = None,
    precision: str | None = None,
    key: str | None = None,
) -> Trainer:
    """Seed, build the model, optimizer, schedule and loss, each from its config section, and wire
    them into a :class:`Trainer` computing in ``precision`` (default: ``train.precision`` resolved
    on ``device``); ``key``: the config's hash where the caller has it (a corpus from files is
    hashed by content)."""
    precision = precision or resolve(config.train.precision, device)
    torch.manual_seed(config.train.seed)
    model = build_model(config.model, corpus.vocabs).to(device)
    batches_per_epoch = len(
        token_batches(
            corpus.train.src_lens, corpus.train.tgt_lens, config.data.max_tokens, config.train.seed, 0
        )
    )
    total = schedule_updates(config, batches_per_epoch)  # None: it ends where train.max_minutes ends
    return Trainer(
        train=config.train,
        evaluation=config.eval,
        model=model,
        optimizer=build_optimizer(config.optim, model),
        scaler=torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
        schedule=build_schedule(
            config.schedule, peak_lr=config.optim.lr, d_model=config.model.d_model, total=total
        ),
        loss=build_loss(config.loss),
        clip_norm=config.optim.clip_norm if config.optim.clip_norm > 0 else math.inf,
        max_tokens=config.data.max_tokens,
        config_hash=key or config_hash(config),
        train_data=corpus.train,
        val_data=corpus.val,
        vocabs=corpus.vocabs,
        device=device,
        precision=precision,
        profile=model.flops_profile(),
        workdir=workdir,
        tracker=tracker or NullTracker(),
        reporter=reporter or NullReporter(),
        ends_with_time=total is None,
    )


def _finished(workdir: Path, key: str) -> Result | None:
    """The stored result of an earlier complete run of this config in ``workdir``, if any."""
    path = workdir / "result.json"
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    if stored.pop("config_hash", None) != key:
        raise UserError(f"{workdir} holds the result of a different config; choose another work directory.")
    return Result(stored["status"], stored, stored.get("run_id"), workdir)


def _resume(trainer: Trainer, key: str) -> tuple[list[str], list[tuple]]:
    """Load the newest valid checkpoint, if any; returns why newer ones were skipped, and the
    metrics it kept that had not reached the store when it was written."""
    path, state, skipped = checkpoint.latest(trainer.checkpoint_dir, map_location=trainer.device)
    if state is None:
        return skipped, []
    if state["config_hash"] != key:
        raise UserError(
            f"{path} was written by a different config (hash {state['config_hash']}, this one "
            f"{key}); choose another work directory or delete that one."
        )
    trainer.load_state_dict(state)
    return skipped, state.get("unsent_metrics", [])  # (none in checkpoints of older ablab)


def final_metrics(
    trainer: Trainer,
    corpus: Corpus,
    params: int,
    device: torch.device,
    config: Config,
    status: str,
    setup_seconds: float,
) -> dict[str, Any]:
    """Training figures, and, unless the run diverged, the test evaluation of the best model.

    Clocks: ``setup_seconds`` data, vocabularies, model and resume in this process;
    ``wall_seconds`` training and validation (the ``train.max_minutes`` clock, across resumes);
    ``train_seconds`` forward, backward and update only; ``eval_seconds`` the test evaluation;
    ``mlflow_io_seconds`` calls to the tracking store in this process, up to the final metrics.
    """
    p = trainer.progress
    peak = peak_flops(device, trainer.precision)
    metrics: dict[str, Any] = {
        "params": params,
        "epochs": p.epochs,
        "steps": p.step,
        "setup_seconds": setup_seconds,
        "train_seconds": p.train_seconds,
        "wall_seconds": p.elapsed_seconds,
        "tgt_tokens_per_s": p.tgt_tokens / p.train_seconds if p.train_seconds else 0.0,
        "mfu": p.flops / p.train_seconds / peak if p.train_seconds and peak else None,
        "precision": p.precision,
        "device_kind": p.device_kind,
        "best_val_bleu": p.best_bleu if p.history else None,
        "best_epoch": p.best_epoch if p.history else None,
        **convergence(p.history),
    }
    tracker = trainer.tracker
    tracker.log_text(yaml.safe_dump(to_dict(config), sort_keys=False), "config.yaml")
    if status == record.DIVERGED:
        tracker.log_metrics(record.final_record(metrics, None), step=p.step)
        return {**metrics, "bleu": None, "bleu_lc": None, "chrf": None, "ece": None}
    best = trainer.checkpoint_dir / "best.pt"
    if best.is_file():
        trainer.model.load_state_dict(checkpoint.load(best, device)["model"])
        tracker.log_file(best, "checkpoints")
    started = time.monotonic()
    precision = trainer.precision
    for i, (name, data) in enumerate(corpus.tests.items()):
        hyps = translate(
            trainer.model, data, corpus.vocabs, config.eval, device, precision, config.eval.beam_size
        )
        scores = bleu_metrics(hyps, data.references, data.bleu_tokenize)
        tracker.log_text("\n".join(hyps) + "\n", f"hypotheses/{name}.txt")
        for k in ("bleu", "bleu_lc", "chrf"):
            metrics[f"{name}/{k}"] = scores[k]
        if i == 0:  # the headline test set
            metrics.update({k: scores[k] for k in ("bleu", "bleu_lc", "chrf")})
            tracker.set_tags(
                {
                    record.BLEU_SIGNATURE: scores["bleu_signature"],
                    record.CHRF_SIGNATURE: scores["chrf_signature"],
                    record.TEST_SET: name,
                }
            )
            tf = teacher_forced(trainer.model, data, config.eval, device, precision)
            metrics.update({"ece": tf.bins.ece, "test_nll": tf.nll_per_token, "test_tokens": tf.tokens})
            tracker.log_json(tf.bins.to_records(), "calibration/reliability_bins.json")
            statistics = _save_statistics(
                trainer.workdir / "statistics" / f"{name}.npz",
                sentence_statistics(hyps, data.references, tf, data.bleu_tokenize),
            )
            tracker.log_file(statistics, "statistics")
            tracker.log_json(
                attention_record(trainer.model, data, config.eval.attention_sentence, corpus.vocabs, device),
                "attention/attention.json",
            )
            samples = record.samples_text(data.sources, data.references, hyps, SAMPLE_TRANSLATIONS)
            tracker.log_text(samples, record.SAMPLES)
    metrics["eval_seconds"] = time.monotonic() - started
    metrics["mlflow_io_seconds"] = tracker.io_seconds
    tracker.log_metrics(record.final_record(metrics, next(iter(corpus.tests), None)), step=p.step)
    return metrics


def _save_statistics(path: Path, arrays: dict) -> Path:
    """The per-sentence statistics as one ``.npz`` (kept in the work folder until delivered)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    checkpoint.atomic_write(path, buffer.getvalue())
    return path


def convergence(history: list[dict[str, float]]) -> dict[str, float | None]:
    """Epochs and seconds until validation BLEU first reached 90 % of the run's best."""
    if not history:
        return {"epochs_to_90pct": None, "seconds_to_90pct": None}
    best = max(h["val_bleu"] for h in history)
    first = next(h for h in history if h["val_bleu"] >= 0.9 * best)
    return {"epochs_to_90pct": first["epoch"], "seconds_to_90pct": first["seconds"]}
