"""A sweep as it stands, read from MLflow: each trial's state and progress, the time left at the
measured pace beside the plan's, as plain lines without control codes; and for real, while a
sweep runs: its status lines, its curves in MLflow before it ends, `ablab status` from a second
process."""

from __future__ import annotations

import functools
import re
import subprocess
import time
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from ablab.experiments.planning.cost import makespan
from ablab.experiments.spec.expand import load_plan
from ablab.experiments.sweep import mlflow_runs, status, status_view
from ablab.trainer.tracking import record
from ablab.trainer.tracking.store import ensure_experiment
from tests.conftest import script
from tests.experiments.conftest import sqlite_uri
from tests.experiments.helpers import start_ablab, write_spec

CONTROL = re.compile(r"\x1b|\r")


def fake_sweep(uri: str) -> str:
    """A parent run and five trials: one queued, one running (100 updates of 400 logged over 50 s,
    the newest 5 s ago), one just started, one done, one failed; each with the plan's 60 s."""
    client = MlflowClient(uri)
    experiment = ensure_experiment(uri, "ablab/fake")
    parent = client.create_run(experiment, tags={record.KIND: record.SWEEP_KIND, record.SPEC: "fake"})
    parent_id = parent.info.run_id

    def trial(name: str, status_tag: str | None, mlflow_status: str = "RUNNING"):
        tags = {record.KIND: record.TRIAL_KIND, record.TRIAL: name, record.PARENT: parent_id}
        tags[record.PLANNED_SECONDS] = "60"
        if status_tag:
            tags[record.STATUS] = status_tag
        run = client.create_run(experiment, tags=tags)
        if mlflow_status != "RUNNING":
            client.update_run(run.info.run_id, status=mlflow_status)
        return run.info.run_id

    trial("queued,seed=1", None, "SCHEDULED")
    running = trial("running,seed=1", record.RUNNING)
    trial("starting,seed=1", record.RUNNING)  # nothing logged yet
    trial("done,seed=1", record.FINISHED, "FINISHED")
    trial("failed,seed=1", record.FAILED, "FAILED")
    now = int(time.time() * 1000)
    points = [
        Metric(record.TRAIN["train_loss"], 5.0 - s / 100, now - 5000 - (100 - s) * 500, s)
        for s in range(10, 101, 10)
    ]
    speeds = [
        Metric(record.TRAIN["tgt_tokens_per_s"], 1000.0 + s, now - (100 - s) * 500, s)
        for s in range(10, 101, 10)
    ]
    client.log_batch(running, metrics=points + speeds + [Metric(record.EPOCH, 0.5, now, 100)])
    client.log_param(running, "derived.planned_updates", "400")
    return parent_id


def test_a_sweep_reads_as_its_trials_states_and_the_time_left_at_their_measured_pace(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = fake_sweep(uri)
    state = status.read(uri, "ablab/fake", lanes=2)
    assert state.parent_run_id == parent and state.spec == "fake" and not state.ended
    counts = [state.count(s) for s in (status.QUEUED, status.RUNNING, status.DONE, status.FAILED)]
    assert counts == [1, 2, 1, 1]
    running, starting = (
        next(t for t in state.trials if t.name == f"{n},seed=1") for n in ("running", "starting")
    )
    assert (running.step, running.total, running.epoch) == (100, 400, 0.5)
    assert starting.step is None and starting.left is None
    # the newest 10 points: 90 updates in 45 s, so 300 updates left take 150 s
    assert running.left == pytest.approx(300 * 45 / 90)
    assert running.tokens_per_s == pytest.approx(1000 + 55) and running.quiet == pytest.approx(5, abs=2)
    assert running.step_seconds == pytest.approx(45 / 90)
    pace = 400 * (45 / 90) / 60  # its whole training at its pace, over the plan's 60 s
    assert state.pace == pytest.approx(pace)
    # the trial not measured yet and the queued one at the plan's time, scaled by the sweep's pace
    assert state.left == pytest.approx(makespan([running.left, pace * 60, pace * 60], 2))
    assert state.planned_left == pytest.approx(makespan([60 * 0.75, 60, 60], 2))
    lines = status_view.plain_lines(state)
    assert lines[0].startswith("fake: done 1/5, running 2, queued 1, failed 1;") and "(planned" in lines[0]
    assert "running,seed=1  step 100/400  epoch 0.50  1,055 tok/s  left 2.5 min" in lines[1]
    assert lines[2] == "  starting,seed=1  starting  left -"
    assert not any(CONTROL.search(line) for line in lines)
    look = subprocess.run(  # from a shell: the same lines, and a failed trial's exit code
        [script("ablab"), "status", "ablab/fake", "--tracking-uri", uri],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert look.returncode == 1 and "fake: done 1/5, running 2, queued 1, failed 1;" in look.stderr
    MlflowClient(uri).set_terminated(parent, "KILLED")  # its driver interrupted: the sweep has ended
    ended = status.read(uri, "ablab/fake", lanes=2)
    assert ended.ended and ended.elapsed < 60 and status_view.headline(ended).endswith(" s in all")
    a_day_later = time.time() + 86400
    later = status.read(uri, "ablab/fake", lanes=2, clock=lambda: a_day_later)
    assert later.elapsed == ended.elapsed  # its time ended with it


def test_a_resumed_sweep_reads_as_running_again_not_ended_and_counts_its_time_from_the_resume(tmp_path):
    plan = load_plan(write_spec(tmp_path, "paused", ablations={"heads": {"model.heads": 1}}))
    uri = sqlite_uri(tmp_path)
    first = mlflow_runs.prepare(uri, plan)
    mlflow_runs.end_parent(uri, first.parent_run_id, "KILLED", {})  # Ctrl-C
    assert status.read(uri, plan.experiment, lanes=2).ended
    resumed_at = time.time() + 3 * 3600  # paused for 3 h
    again = mlflow_runs.prepare(uri, plan, parent_run_id=first.parent_run_id, clock=lambda: resumed_at)
    state = status.read(uri, plan.experiment, lanes=2, clock=lambda: resumed_at + 240)
    assert again.parent_run_id == state.parent_run_id == first.parent_run_id
    assert not state.ended and state.count(status.QUEUED) == 2
    headline = status_view.headline(state)
    assert headline.startswith("paused: done 0/2, running 0, queued 2")  # not "ended"
    assert "; 4.0 min since --resume," in headline  # not 3 h 04 min: the pause is left out


def test_a_sequential_sweeps_status_names_its_look(tmp_path):
    seeds = {"initial": 2, "max": 4, "step": 2}
    plan = load_plan(write_spec(tmp_path, "looked", ablations={"heads": {"model.heads": 1}}, seeds=seeds))
    uri = sqlite_uri(tmp_path)
    mlflow_runs.prepare(uri, plan)
    state = status.read(uri, plan.experiment, lanes=2)
    assert state.look == 1 and status_view.headline(state).startswith("looked, look 1: done 0/4, running 0")


def test_status_of_a_spec_without_a_sweep_is_a_clear_error(tmp_path):
    spec = write_spec(tmp_path, "never")
    out = subprocess.run(
        [script("ablab"), "status", str(spec), "--tracking-uri", sqlite_uri(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 2 and "there is no sweep of ablab/never" in out.stderr


@pytest.mark.integration
def test_a_running_sweep_shows_its_progress_and_ablab_status_reads_it_from_another_process(tmp_path):
    spec = write_spec(
        tmp_path,
        "watched",
        baseline={"config": {"data": {"train_subset": 3000, "max_tokens": 1024, "vocab_size": 400},
                             "model": {"layers": 1, "d_model": 32, "heads": 2, "ff_dim": 32},
                             "schedule": {"name": "constant", "warmup_steps": 5}, "optim": {"lr": 0.003},
                             "train": {"epochs": 4, "log_every": 2},
                             "eval": {"val_sentences": 20, "test_sentences": 20, "beam_size": 1}}},
        resources={"cpus": 1},
    )  # fmt: skip
    uri = sqlite_uri(tmp_path)
    sweep = start_ablab(
        tmp_path, "run", str(spec), "--tracking-uri", uri, "--status-every", "0.5", capture=True
    )
    said = []  # the sweep's lines, read until it has made its store (reading it sooner races the making)
    while not said or "trials to run" not in said[-1]:
        said.append(sweep.stderr.readline())
        assert said[-1] or sweep.poll() is None, "".join(said)[-3000:]
    client, deadline = MlflowClient(uri), time.monotonic() + 300
    seen = None
    while seen is None:  # a trial's curve in the store while it still runs
        assert sweep.poll() is None and time.monotonic() < deadline, "no live curve before the trial ended"
        experiment = client.get_experiment_by_name("ablab/watched")
        runs = (
            client.search_runs([experiment.experiment_id], "tags.`ablab.status` = 'running'")
            if experiment
            else []
        )
        for run in runs:
            if client.get_metric_history(run.info.run_id, "train/loss"):
                seen = run.info.run_id
        time.sleep(0.2)
    look = subprocess.run(
        [script("ablab"), "status", str(spec), "--tracking-uri", uri],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert look.returncode == 0, look.stderr
    assert "running 1" in look.stderr and "baseline,seed=1  step " in look.stderr
    out, rest = sweep.communicate(timeout=600)
    err = "".join(said) + rest
    assert sweep.returncode == 0, err[-3000:]
    assert not CONTROL.search(err)  # not a terminal: plain lines
    pattern = r"baseline,seed=1  step (\d+)/(\d+) .* left ([\d.]+) (s|min)"
    progress = [m for m in map(functools.partial(re.search, pattern), err.splitlines()) if m]
    steps = [int(m.group(1)) for m in progress]
    assert len(steps) >= 2 and steps == sorted(steps) and steps[-1] > steps[0], err[-3000:]
    assert {m.group(2) for m in progress} == {progress[0].group(2)}  # of one planned total
    done = subprocess.run(
        [script("ablab"), "status", str(spec), "--tracking-uri", uri],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and "ended" in done.stderr
    assert client.get_metric_history(seen, "system/process_cpu_percentage")  # its system metrics


def test_a_trial_silent_for_longer_than_a_delivery_takes_is_counted_slower():
    now = 1_000_000.0
    points = [
        SimpleNamespace(step=s, timestamp=1000 * (now - 600 - (100 - s) * 0.5)) for s in range(10, 101, 10)
    ]
    # logged 90 updates in 45 s, then nothing for 10 min: a pace over the 615 s to (now - 30 s)
    assert status._step_seconds(points, now) == pytest.approx((45 + 600 - 30) / 90)
    fresh = [SimpleNamespace(step=p.step, timestamp=p.timestamp + 1000 * 595) for p in points]
    assert status._step_seconds(fresh, now) == pytest.approx(45 / 90)  # 5 s ago: as logged
    assert status._step_seconds(points[:1] * 2, now) is None  # no updates between its points


def test_a_resumed_trials_pace_and_training_time_leave_out_the_pause(tmp_path):
    """Updates 10-60 logged at 0.5 s each; stopped for an hour; resumed from the checkpoint of
    update 40, it recomputed 41-60 (their points already in the store are not logged again) and
    logged 80-120 at 0.2 s each: its pace is the new attempt's, its training time without the
    hour (its clock at the checkpoint, then the time since it resumed)."""
    uri = sqlite_uri(tmp_path)
    client = MlflowClient(uri)
    run = client.create_run(ensure_experiment(uri, "ablab/resumed")).info.run_id
    now = time.time()
    attempt = now - 600 - 20
    first = now - 600 - 3600 - 25
    before = [(s, first + (s - 10) * 0.5) for s in range(10, 61, 10)]
    after = [(s, attempt + 4 + (s - 40) * 0.2) for s in range(80, 121, 10)]  # 4 s to start again
    loss = record.TRAIN["train_loss"]
    client.log_batch(run, metrics=[Metric(loss, 3.0, int(1000 * t), s) for s, t in before + after])
    client.log_param(run, "derived.planned_updates", "1000")
    client.set_tag(run, record.STATUS, record.RUNNING)
    client.set_tag(run, record.RESUMED_FROM, "40")
    # without the attempt's start (a run resumed by an older ablab) its newest points span the hour
    spanning = status._trial(client, client.get_run(run), after[-1][1] + 5)
    client.set_tag(run, record.ATTEMPT_STARTED, f"{attempt:.3f}")
    client.set_tag(run, record.TRAINED_BEFORE, "20")  # its clock at the checkpoint of update 40
    trial = status._trial(client, client.get_run(run), after[-1][1] + 5)
    assert trial.step_seconds == pytest.approx(0.2) and trial.left == pytest.approx(880 * 0.2)
    assert spanning.step_seconds > 100 * trial.step_seconds
    # limited by minutes: 3 minutes less the 20 s before the pause and the 33 s since it resumed
    client.log_param(run, "train.max_minutes", "3")
    timed = status._trial(client, client.get_run(run), after[-1][1] + 5)
    assert timed.left == pytest.approx(180 - 20 - (after[-1][1] + 5 - attempt), abs=0.01)


def test_a_trial_ends_at_its_step_total_or_its_minutes_whichever_comes_first():
    assert status._left(100, 400, 0.5, None, 700.0) == pytest.approx(150)
    assert status._left(100, 400, 0.5, 12.0, 700.0) == pytest.approx(12 * 60 - 700)  # minutes end first
    assert status._left(100, None, None, 30.0, 700.0) == pytest.approx(30 * 60 - 700)  # by minutes alone
    assert status._left(100, 400, None, None, 700.0) is None
