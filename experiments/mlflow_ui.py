"""``ablab ui``: MLflow's UI over a store, served in its own process group and stopped with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(uri: str, host: str, port: int, say) -> int:
    """Serve the UI of ``uri`` on ``host:port`` until the server exits or Ctrl-C / SIGTERM stops
    it (then with everything it started); ``say`` prints a line for the user. The exit code."""
    if host not in LOOPBACK:
        say(
            f"ablab: warning: serving on {host}: anyone who can reach this machine can read and change "
            "the runs. An SSH tunnel (ssh -L 5000:127.0.0.1:5000 HOST) keeps them private."
        )
    say(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C stops it)")
    for line in experiment_pages(uri, f"http://{host}:{port}"):  # before the server opens the store
        say(line)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", host, "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, env=env, start_new_session=True)  # its own group, stopped below

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        return server.wait()
    except KeyboardInterrupt:
        stop_group(server, timeout=15)
        return 0


def stop_group(process, timeout: float) -> None:
    """Stop a process started in its own group (``start_new_session``) and everything it
    started: SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def experiment_pages(uri: str, base: str) -> list[str]:
    """Each ablab experiment of the store and its runs page, newest first."""
    from mlflow import MlflowClient

    from ablab.trainer.tracking.record import ui_link

    experiments = [e for e in MlflowClient(uri).search_experiments() if e.name.startswith("ablab")]
    return [f"  {e.name}: {ui_link(base, e.experiment_id)}" for e in experiments]
