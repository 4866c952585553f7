"""The run record in MLflow: every name ablab writes on a run and reads back, in one place.

The trainer's tracker, the sweep driver and the report (:mod:`ablab.analysis.load`) all go through
this module, so a tag, a status or a metric is spelled once. It imports MLflow only.

**Runs.** A spec is an experiment; an invocation of ``ablab run`` a parent run (kind
``sweep``); a trial exactly one child run (kind ``trial``). ``ablab train`` makes one run.

**Status** (tag ``ablab.status``): ``running``, then ``finished``, ``diverged`` (a result: the
loss became NaN or exploded), ``failed``, ``killed`` (Ctrl-C; ``--resume`` continues it) or
``early_stopped`` (by a search scheduler). ``finished``, ``diverged`` and ``early_stopped`` are
*done*: a re-run skips them.

**Metrics**, named by phase so the MLflow UI groups them, every curve at the global update step:

- ``train/loss`` (with label smoothing), ``train/nll`` (without: comparable across smoothing
  arms) and ``train/tokens_per_s`` at every ``log_every``-th update: over the updates since the
  last logged one, the logged one included (per target token, each update weighted by its
  tokens; older runs logged the logged update's own, a sample of the curve); ``train/lr`` and
  ``train/grad_norm``: the logged update's own;
- ``val/loss``, ``val/ppl``, ``val/bleu`` at each validation;
- ``epoch`` (fractional) beside both, at the same steps;
- ``test/<set>/bleu``, ``test/<set>/bleu_lc``, ``test/<set>/chrf`` per test set, and for the
  headline set (tag ``ablab.test_set``) ``test/<set>/ece``, ``test/<set>/nll``,
  ``test/<set>/tokens``;
- ``run/<name>``: the run's summary (``run/params``, ``run/epochs``, ``run/steps``,
  ``run/train_seconds``, ``run/mfu``, ``run/epochs_to_90pct``, ``run/diverged_step``, ...).

Stores written before these names (``train_loss``, ``val_bleu`` at the validation count with
``epoch_step``, a bare ``bleu``) are read in these names by :mod:`ablab.trainer.tracking.older_stores`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ablab.trainer.tracking import older_stores

# tags
KIND, SPEC, SPEC_HASH = "ablab.kind", "ablab.spec", "ablab.spec_hash"
TRIAL, TRIAL_HASH, GROUPS, SEED, ARM = (
    "ablab.trial",
    "ablab.trial_hash",
    "ablab.groups",
    "ablab.seed",
    "ablab.arm",
)
SPEC_FILE = "ablab.spec_file"
"""A sweep's spec file name: two specs may share an experiment (a sequential design's ``name:``
the fixed one's), and each one's report goes to its own sweep runs."""
STATUS, ERROR, TEST_SET = "ablab.status", "ablab.error", "ablab.test_set"
CONFIG_HASH, GIT_COMMIT, RESUMED_FROM = "ablab.config_hash", "ablab.git_commit", "ablab.resumed_from_step"
ATTEMPT_STARTED, TRAINED_BEFORE = "ablab.attempt_started", "ablab.trained_seconds_before_attempt"
"""When a resumed run's current attempt began (seconds since the epoch: the points it logged
before were logged before the pause, and its pace is measured from here on), and the seconds it
had trained by the checkpoint it resumed from (the ``train.max_minutes`` clock)."""
DEVICE, TORCH_VERSION, ARCH = "ablab.device", "ablab.torch_version", "ablab.arch"
PRECISION, DEVICE_KIND = "ablab.precision", "ablab.device_kind"
"""What the run computed in and on: ``train.precision`` resolved (``auto`` -> ``bf16``, ...) and the
GPU's name or the CPU's model and instruction set; ``a + b`` where a resumed run changed them."""
PRECISION_NOTE = "ablab.precision_note"  # what an emulated precision costs, where one was asked for
SLOW = "ablab.slow"  # a trial far slower than planned: by how much, and the likely cause
ASSIGNED_GPUS = "ablab.assigned_gpus"
"""The GPUs a scheduler assigned to the run's process (``CUDA_VISIBLE_DEVICES``; Ray sets it)."""
BLEU_SIGNATURE, CHRF_SIGNATURE = "ablab.bleu_signature", "ablab.chrf_signature"
TUNE_TRIAL_ID = "ablab.tune_trial_id"  # a search trial's Tune id: its attempts share one run
AXIS, SEARCHED = "ablab.axis.", "ablab.search."  # prefixes: a grid point's values, a searched value
RAY_NODES = "ablab.ray_nodes"  # the Ray nodes a trial ran on, in order (ip/node id)
LOOK = "ablab.look"  # a sequential design's look (from 1) whose seeds first include the trial's
PLANNED_SECONDS = "ablab.planned_seconds"  # the plan's estimate of the whole trial, at the sweep's start
REOPENED_AT = "ablab.reopened_at"
"""When ``--resume`` last reopened a sweep's parent run (seconds since the epoch): the sweep's
status counts its time from there, not across the pause before it."""
SEARCH_ROLE, SEARCH_METRIC = "ablab.search_role", "ablab.search_metric"  # the metric: "val_bleu max"
"""'search' (a sampled trial with the first seed) or 'confirm' (another seed at the values the
search found best): of a searched spec, the report compares the confirmation runs."""
NOTE, PARENT = "mlflow.note.content", "mlflow.parentRunId"  # MLflow's own: description, nesting
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
"""An experiment tag of MLflow 3's UI: with it the experiment opens on its runs ("Model
training"), not on the GenAI overview (traces, token cost)."""
SWEEP_KIND, TRIAL_KIND = "sweep", "trial"
BASELINE = "baseline"
"""The baseline's group (tag ``ablab.groups``), setting and trial-name label: every ablation is
compared against the runs that hold it."""
UI = "http://127.0.0.1:5000"
"""Where ``ablab ui`` serves a local store."""

# statuses
RUNNING, FINISHED, DIVERGED = "running", "finished", "diverged"
FAILED, KILLED, EARLY_STOPPED = "failed", "killed", "early_stopped"
DONE = (FINISHED, DIVERGED, EARLY_STOPPED)
MLFLOW_STATUS = {
    FINISHED: "FINISHED",
    DIVERGED: "FINISHED",
    FAILED: "FAILED",
    KILLED: "KILLED",
    EARLY_STOPPED: "KILLED",
}
"""ablab status -> MLflow run status. A diverged run is a result, so MLflow shows it finished;
the ``ablab.status`` tag tells the two apart."""

# metrics: the trainer's own keys -> their names in MLflow
EPOCH = "epoch"
TRAIN = {
    "train_loss": "train/loss",
    "train_nll": "train/nll",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "tgt_tokens_per_s": "train/tokens_per_s",
}
VALIDATION = {"val_loss": "val/loss", "val_ppl": "val/ppl", "val_bleu": "val/bleu"}


def metric_key(name: str) -> str:
    """The MLflow key of a metric Tune ranks trials by: ``val_bleu`` is logged as ``val/bleu``;
    any other name is its own key."""
    return VALIDATION.get(name, name)


TEST = {
    "bleu": "bleu",
    "bleu_lc": "bleu_lc",
    "chrf": "chrf",
    "ece": "ece",
    "test_nll": "nll",
    "test_tokens": "tokens",
}
"""Headline test metrics (the trainer's keys) -> their name under ``test/<set>/``."""


def ui_link(tracking_uri: str, experiment_id: str, run_id: str | None = None, path: str = "") -> str:
    """A page of the MLflow UI, opened in its model-training view: the experiment's runs, a run,
    or (``path``) an artifact of the run. A tracking server serves its own UI; a local store is
    served by ``ablab ui``."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else UI
    page = f"{base}/#/experiments/{experiment_id}/runs"
    if run_id:
        page += f"/{run_id}" + (f"/artifacts/{path}" if path else "")
    return f"{page}?workflowType=machine_learning"


def status(run) -> str:
    """A run's ablab status (its MLflow status, lowercased, where the tag is missing)."""
    return run.data.tags.get(STATUS) or run.info.status.lower()


def is_done(run) -> bool:
    return run.data.tags.get(STATUS) in DONE


def search(client, experiment_id: str, kind: str | None = None, where: str | None = None) -> list:
    """Every run of the experiment (all pages), of ``kind`` and matching the filter ``where``."""
    query = " and ".join(q for q in (kind and f"tags.`{KIND}` = '{kind}'", where) if q)
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def train_record(metrics: dict[str, float], epoch: float) -> dict[str, float]:
    """A logged update's metrics (loss, NLL and pace over its window: ``Progress.logged_window``)
    by their MLflow names, with the epoch beside them."""
    return {TRAIN[k]: v for k, v in metrics.items() if k in TRAIN} | {EPOCH: epoch}


def validation_record(metrics: dict[str, float], epoch: float) -> dict[str, float]:
    return {VALIDATION[k]: v for k, v in metrics.items() if k in VALIDATION} | {EPOCH: epoch}


def test_name(test_set: str, metric: str) -> str:
    return f"test/{test_set}/{metric}"


def final_record(metrics: dict[str, Any], test_set: str | None) -> dict[str, float]:
    """A run's final metrics (the trainer's keys: ``bleu``, ``<set>/bleu``, ``params``, ...) by
    their MLflow names, each once: ``test/...`` for test sets, ``run/...`` for the rest."""
    out = {}
    for key, value in metrics.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            continue
        if "/" in key:  # "<set>/<metric>" of any test set
            out[f"test/{key}"] = value
        elif key in TEST:
            if test_set:
                out[test_name(test_set, TEST[key])] = value
        else:
            out[f"run/{key}"] = value
    return out


def summary(metrics: dict[str, float], test_set: str | None) -> dict[str, float]:
    """The trainer's keys back from a run's MLflow metrics (``bleu``, ``ece``, ``params``, ...),
    from today's names or an older store's."""
    out = older_stores.final_metrics(metrics)  # none in a run of today
    out |= {k.removeprefix("run/"): v for k, v in metrics.items() if k.startswith("run/")}
    for key, name in TEST.items():
        value = metrics.get(test_name(test_set, name)) if test_set else None
        out[key] = value if value is not None else out.get(key)
    return out


def param_text(value: Any) -> str:
    """A config value as the run's MLflow param holds it: lists and mappings as JSON."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def setting_of(trial: str) -> str:
    """``heads=8,seed=1`` -> ``heads=8``: the trial's name without its seed."""
    parts = [p for p in trial.split(",") if not p.startswith("seed=")]
    return ",".join(parts) or trial


SAMPLES = "samples.txt"
"""The run's artifact of its first test translations, each source, reference and hypothesis."""
_SAMPLE = re.compile(r"^\[(\d+)\] SRC: (.*)\n    REF: (.*)\n    HYP: (.*)$", re.M)


def samples_text(sources: list[str], references: list[str], hypotheses: list[str], n: int) -> str:
    """The first ``n`` translations as :data:`SAMPLES` holds them (``[0] SRC: …`` / ``REF`` / ``HYP``)."""
    return "\n".join(
        f"[{i}] SRC: {sources[i]}\n    REF: {references[i]}\n    HYP: {hypotheses[i]}\n"
        for i in range(min(n, len(hypotheses)))
    )


def read_samples(text: str) -> list[dict[str, str]]:
    """:data:`SAMPLES` read back: ``source``, ``reference``, ``hypothesis`` of each sentence, in order."""
    return [
        {"source": src, "reference": ref, "hypothesis": hyp} for _, src, ref, hyp in _SAMPLE.findall(text)
    ]
