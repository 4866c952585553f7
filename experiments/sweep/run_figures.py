"""Figures on a run's own MLflow page: its training curves, reliability diagram and attention.

Drawn once the trainer has returned (``ablab train`` unless ``--no-figures``, every sweep trial
unless its spec says ``run_figures: false``) from what the run logged, read back with
:func:`ablab.analysis.load.load_run`, and logged under the run's ``figures/`` artifacts, so that the run
page in the MLflow UI shows pictures, not only JSON. They are a convenience: a store that does not
answer, or a run with nothing to draw, costs the figures and one warning line, never the run.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def run_figures(tracking_uri: str, run_id: str) -> dict:
    """Name -> matplotlib figure, for what the run has: curves, reliability bins, attention."""
    from ablab.analysis import curve_figures, figures, model_figures
    from ablab.analysis.load import load_run

    runs = load_run(tracking_uri, run_id)
    row = runs.trials.iloc[0]
    colors = figures.palette([row["setting"]])
    out = {}
    if not runs.curves.empty:
        title = f"{row['trial']}: training"
        diverged = {} if row["diverged_step"] is None else {run_id: int(row["diverged_step"])}
        out["training_curves"] = curve_figures.plot_training_curves(runs.curves, colors, diverged, title)
    if not runs.bins.empty:
        ece = {row["setting"]: row["ece"]}
        out["reliability"] = model_figures.plot_reliability(
            runs.bins, ece, colors, f"{row['trial']}: reliability"
        )
    if run_id in runs.attention:
        out["attention"] = model_figures.plot_attention({row["setting"]: runs.attention[run_id]}, "Attention")
    return out


def log_run_figures(tracking_uri: str, run_id: str | None) -> list[str]:
    """Draw the run's figures and log them under ``figures/``; returns the files logged."""
    if run_id is None:
        return []
    import matplotlib.pyplot as plt
    from mlflow import MlflowClient

    try:
        made = run_figures(tracking_uri, run_id)
        with tempfile.TemporaryDirectory() as folder:
            for name, fig in made.items():
                fig.savefig(Path(folder) / f"{name}.png", dpi=100)
                plt.close(fig)
            if made:
                MlflowClient(tracking_uri).log_artifacts(run_id, folder, "figures")
        return [f"figures/{name}.png" for name in made]
    except Exception as exc:  # figures are a convenience: never fail a trained run over them
        print(f"ablab: warning: the figures of run {run_id} were not logged ({exc})", file=sys.stderr)
        return []
