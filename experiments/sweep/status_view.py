"""A sweep's state (:mod:`ablab.experiments.sweep.status`) as a person reads it: plain lines for a
log file or CI (no control codes), a table for a terminal, where ``ablab run`` keeps it live."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.table import Table

from ablab.experiments.sweep.status import QUEUED, RUNNING, SweepState, TrialState


def duration(seconds: float | None) -> str:
    """``45 s``, ``12.5 min``, ``3 h 05 min``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def headline(state: SweepState) -> str:
    """``smoke: done 3/9, running 2, queued 4, failed 0; 12.3 min in, about 8.5 min left (planned
    6.1 min)``; a sequential design's names its newest look: ``suite, look 2: done 6/20, ...``; a
    resumed sweep counts its time from its last ``--resume``: ``4.0 min since --resume``."""
    name = f"{state.spec}, look {state.look}" if state.look else state.spec
    counts = f"done {state.count('done')}/{len(state.trials)}, running {state.count(RUNNING)}, "
    counts += f"queued {state.count(QUEUED)}, failed {state.count('failed')}"
    killed = state.count("killed")
    if killed:
        counts += f", killed {killed}"
    if state.ended:
        after = "after its last --resume" if state.resumed else "in all"
        return f"{name}: {counts}; ended, {duration(state.elapsed)} {after}"
    since = "since --resume" if state.resumed else "in"
    left = f"about {duration(state.left)} left" if state.left is not None else "time left not measured yet"
    planned = f"planned {duration(state.planned_left)}"
    return f"{name}: {counts}; {duration(state.elapsed)} {since}, {left} ({planned})"


def step_text(t: TrialState) -> str:
    if t.step is None:
        return "starting"
    return f"{t.step:,}/{t.total:,}" if t.total else f"{t.step:,}"


def trial_line(t: TrialState) -> str:
    """One running trial: ``heads=8,seed=1  step 340/1,000  epoch 1.38  12,345 tok/s  val BLEU 9.85
    left 4.1 min  last logged 12 s ago``."""
    parts = [t.name, f"step {step_text(t)}" if t.step is not None else "starting"]
    if t.epoch is not None:
        parts.append(f"epoch {t.epoch:.2f}")
    if t.tokens_per_s is not None:
        parts.append(f"{t.tokens_per_s:,.0f} tok/s")
    if t.val_bleu is not None:
        parts.append(f"val BLEU {t.val_bleu:.2f}")
    parts.append(f"left {duration(t.left)}")
    if t.quiet is not None:
        parts.append(f"last logged {duration(t.quiet)} ago")
    return "  ".join(parts)


def plain_lines(state: SweepState) -> list[str]:
    """The headline, then a line per running trial, indented."""
    return [headline(state), *(f"  {trial_line(t)}" for t in state.trials if t.state == RUNNING)]


def table(state: SweepState):
    """The headline, and the running trials as a table beneath it (a terminal's live view)."""
    from rich.console import Group
    from rich.text import Text

    running = [t for t in state.trials if t.state == RUNNING]
    if not running:
        return Text(headline(state))
    grid = Table(expand=False, show_edge=False)
    for column in ("trial", "step", "epoch", "tok/s", "val BLEU", "left", "last logged"):
        grid.add_column(column, justify="left" if column == "trial" else "right", no_wrap=True)
    for t in running:
        grid.add_row(
            t.name,
            step_text(t),
            "-" if t.epoch is None else f"{t.epoch:.2f}",
            "-" if t.tokens_per_s is None else f"{t.tokens_per_s:,.0f}",
            "-" if t.val_bleu is None else f"{t.val_bleu:.2f}",
            duration(t.left),
            "-" if t.quiet is None else f"{duration(t.quiet)} ago",
        )
    return Group(Text(headline(state)), grid)


def show(
    read: Callable[[], SweepState],
    echo: Callable[[str], None],
    every: float | None = None,
    live: bool = False,
) -> SweepState:
    """Print the sweep's state once, or (``every``) again every ``every`` seconds until it ends or
    Ctrl-C: redrawn in place where ``live`` (a terminal), as plain lines otherwise. Returns the
    last state."""
    from rich.console import Console
    from rich.live import Live

    state = read()
    view = Live(table(state), console=Console(stderr=True), auto_refresh=False) if live else None
    if view is None:
        for line in plain_lines(state):
            echo(line)
    else:
        view.start()
    try:
        while every and not state.ended:
            time.sleep(every)
            state = read()
            if view is None:
                for line in plain_lines(state):
                    echo(line)
            else:
                view.update(table(state), refresh=True)
    except KeyboardInterrupt:
        pass  # the user has seen enough: the state so far decides the exit code
    finally:
        if view is not None:
            view.stop()
    return state
