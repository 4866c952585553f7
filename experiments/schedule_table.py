"""Learning-rate schedules as tables (step, schedule, lr) for plots and reports.

The reference comparison of learning-rate schedules, over 100,000 updates: Noam with warmup 4000
at d_model 512, and warmup + cosine and warmup + linear decay, both with warmup 2000 and peak 3e-4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablab.trainer.optim.schedules import make_schedule

SEED_SCHEDULES = {
    "noam": dict(d_model=512, warmup=4000),
    "warmup_cosine": dict(lr_max=3e-4, warmup=2000),
    "warmup_linear": dict(lr_max=3e-4, warmup=2000),
}


def schedule_table(name: str, steps: int, label: str | None = None, **values) -> pd.DataFrame:
    """``lr(step)`` for steps 1..``steps`` of schedule ``name`` bound to ``values``."""
    lr = make_schedule(name, total=steps, **values)
    step = np.arange(1, steps + 1)
    return pd.DataFrame({"step": step, "schedule": label or name, "lr": [lr(int(s)) for s in step]})


def reference_schedules_table(steps: int = 100_000) -> pd.DataFrame:
    return pd.concat(
        [schedule_table(name, steps, **values) for name, values in SEED_SCHEDULES.items()],
        ignore_index=True,
    )
