"""MLflow as a team runs it: a tracking server on PostgreSQL (Debian's, started here as a
non-root user in a temporary folder on 127.0.0.1) with proxied artifacts, so that trials share
nothing with the store but HTTP; a sweep of twelve small trials through it, 8 at once: four
settings (a Transformer variant, no label smoothing, a GRU seq2seq) by three seeds. The smoke
spec's own trials, which take minutes rather than seconds, run through sqlite in the report tests."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ablab.experiments.spec.expand import load_plan
from tests.experiments.conftest import ablab
from tests.experiments.helpers import (
    free_port,
    mlflow_server,
    most_at_once,
    most_running,
    stop,
    trial_runs,
    trial_spans,
    wait_healthy,
    write_spec,
)

pytestmark = pytest.mark.integration


def _pg(program: str) -> str:
    """A PostgreSQL program from Debian's package (newest major version installed)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{program}"), key=lambda p: int(p.parts[-3]))
    if found:
        return str(found[-1])
    on_path = shutil.which(program)
    assert on_path, f"PostgreSQL's {program} is not installed (Debian: apt-get install postgresql)"
    return on_path


@pytest.fixture
def postgres():
    """A PostgreSQL server on 127.0.0.1, run as 'nobody' when the tests run as root (PostgreSQL
    refuses root); the database 'mlflow' in it. Yields its URI and a query function."""
    folder = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    user = "nobody" if os.geteuid() == 0 else None
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = free_port()

    def run(*command: str) -> str:
        out = subprocess.run(command, capture_output=True, text=True, user=user, cwd=folder, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    run(_pg("initdb"), "-D", str(folder / "data"), "-U", "ablab", "--auth=trust", "-E", "UTF8", "--no-locale")
    server = f"-h 127.0.0.1 -p {port} -k {folder}"
    run(_pg("pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "-o", server, "start")
    try:
        run(_pg("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "ablab", "mlflow")

        def query(sql: str) -> str:
            return run(
                _pg("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "ablab", "-d", "mlflow", "-tAc", sql
            )

        yield f"postgresql://ablab@127.0.0.1:{port}/mlflow", query
    finally:
        run(_pg("pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_a_sweep_through_a_server_on_postgresql_with_eight_trials_at_once(tmp_path, postgres, shared_ray):
    store, query = postgres
    port = free_port()
    server = mlflow_server(tmp_path, port, store=store)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(uri, "the MLflow server on PostgreSQL")
        spec_path = write_spec(
            tmp_path,
            "team",
            ablations={
                "heads": {"model.heads": 1},
                "no_label_smoothing": {"loss.label_smoothing": 0.0},
                "seq2seq": {"model.arch": "seq2seq"},
            },
            seeds=[1, 2, 3],
            max_concurrent=8,
            resources={"cpus": 0.25},
        )
        out = ablab("run", spec_path, "--tracking-uri", uri, cwd=tmp_path, ray=shared_ray)
        assert out.returncode == 0, out.stderr[-3000:]
        runs = trial_runs(uri, "ablab/team")
        assert len(runs) == len(load_plan(spec_path).trials) == 12  # 4 settings x 3 seeds
        assert all(r.data.tags["ablab.status"] == "finished" for r in runs)
        assert len({r.data.tags["ablab.trial"] for r in runs}) == len(runs)  # one run per trial
        assert most_running(out.stderr) == 8  # the sweep ran eight trials at once
        # and they wrote to PostgreSQL at the same time (how many of the eight overlap on the
        # worker depends on the machine's load: the settings train for different times)
        spans = trial_spans(uri, runs)
        writing = most_at_once(spans)
        assert writing >= 2, spans
        client = MlflowClient(uri)
        for run in runs:
            assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # through the server only
            assert "statistics" in {a.path for a in client.list_artifacts(run.info.run_id)}
            assert client.get_metric_history(run.info.run_id, "train/loss")
        parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
        assert parent.info.status == "FINISHED"
        # the rows are in PostgreSQL itself: every trial and the parent, finished, with metrics
        assert int(query("select count(*) from runs where status = 'FINISHED'")) == len(runs) + 1
        assert int(query("select count(distinct run_uuid) from metrics where key = 'train/loss'")) == len(
            runs
        )
        assert not (tmp_path / "mlruns").exists()
        print(
            f"PostgreSQL: {len(runs)} trial runs + 1 parent finished; 8 ran at once, {writing} wrote at once"
        )
    finally:
        stop(server)
