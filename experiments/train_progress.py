"""A rich progress bar for ``ablab train`` on a terminal; plain epoch lines elsewhere; and the
summary it prints at its end.

It writes to stderr so that stdout stays clean for ``--json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ablab.trainer.config.schema import Config
from ablab.trainer.hardware.device import describe
from ablab.trainer.optim.run_length import planned_updates


class TerminalReporter:
    def __init__(self, config: Config):
        self.config = config
        self.console = Console(stderr=True)
        self.bar: Progress | None = None
        self.task = None

    def _total(self, progress) -> int | None:
        if not progress.batches_in_epoch:
            return self.config.train.max_steps
        return planned_updates(self.config, progress.batches_in_epoch)

    def on_start(self, device, precision: str) -> None:
        self.console.print(f"training in {precision} on {describe(device)}", highlight=False)

    def on_step(self, progress, metrics: dict[str, float]) -> None:
        if not self.console.is_terminal:
            return
        if self.bar is None:
            self.bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=self._total(progress), status="")
        status = (
            f"epoch {progress.epochs:.2f}  loss {metrics['train_loss']:.3f}  lr {metrics['lr']:.2e}  "
            f"{metrics['tgt_tokens_per_s']:,.0f} tok/s"
        )
        self.bar.update(self.task, completed=progress.step, status=status)

    def on_epoch(self, progress, metrics: dict[str, float], checkpoint_dir) -> None:
        line = (
            f"epoch {progress.epochs:.2f}  step {progress.step}  val loss {metrics['val_loss']:.3f}  "
            f"val BLEU {metrics['val_bleu']:.2f}  ({progress.elapsed_seconds:.0f} s)"
        )
        if self.bar is not None:
            self.bar.console.print(line)
            if progress.done:
                self.bar.stop()
        else:
            print(line, file=sys.stderr, flush=True)


def result_summary(metrics: dict, workdir: Path, uri: str) -> str:
    """What ``ablab train`` prints at its end: status, test scores, size and speed, where it is."""

    def fmt(key: str, spec: str = ".2f") -> str:
        value = metrics.get(key)
        return "n/a" if value is None else format(value, spec)

    return "\n".join(
        [
            f"status {metrics['status']}   run {metrics.get('run_id')}   store {uri}",
            f"test BLEU {fmt('bleu')} (lowercased {fmt('bleu_lc')}, chrF {fmt('chrf')})   "
            f"ECE {fmt('ece', '.4f')}",
            f"params {metrics['params']:,}   epochs {fmt('epochs')}   steps {metrics['steps']}   "
            f"train {fmt('train_seconds', '.0f')} s   {fmt('tgt_tokens_per_s', ',.0f')} target tokens/s   "
            f"MFU {fmt('mfu', '.3f')}   {metrics.get('precision')} on {metrics.get('device_kind')}",
            f"work directory {workdir}",
        ]
    )
