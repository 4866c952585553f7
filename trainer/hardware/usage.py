"""What a run's machine and process are doing, on its MLflow page: a starved or oversubscribed
trial shows there as a process using less than its CPUs while the machine is busy.

Every ``ABLAB_SYSTEM_SECONDS`` (default 10; 0: none) a thread samples and logs, under MLflow's
own names so that the MLflow UI shows them as the run's system metrics:

- the machine: ``system/cpu_utilization_percentage`` (all cores, 100 = every core busy),
  ``system/system_memory_usage_megabytes`` and ``..._percentage`` (MLflow's ``CPUMonitor``),
  and with an NVIDIA GPU and ``nvidia-ml-py`` each GPU's utilization, memory and power
  (MLflow's ``GPUMonitor``);
- the trial's own process: ``system/process_cpu_percentage`` (100 = one core, so a trial given
  2 CPUs that gets them reads about 200), ``system/process_memory_megabytes`` (resident),
  ``system/load_average`` (runnable processes over the last minute, against the cores) and, on
  CUDA, ``system/torch_cuda_allocated_megabytes`` (what PyTorch holds on the device).

MLflow's collectors are used, not its ``SystemMetricsMonitor``: that one stops for good at the
first write the store does not take, and looks the run up before every sample; these samples go
through the run's tracker, which queues and retries them like any metric. Each sample's step is
the seconds since the run began (its MLflow start time), so the samples of a resumed run, on this
node or another, go on after the last ones delivered and none is logged twice. A sample that
fails (a process the system no longer lets us read) is skipped with one warning; the next is taken.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import psutil
import torch

USAGE_ENV = "ABLAB_SYSTEM_SECONDS"
DEFAULT_EVERY = 10.0


class ProcessUsage:
    """The trial's process: its CPU (since the last sample) and resident memory, the load."""

    def __init__(self, device: torch.device):
        self.process, self.device = psutil.Process(), device
        self.process.cpu_percent(None)  # the first call starts the interval

    def sample(self) -> dict[str, float]:
        out = {
            "process_cpu_percentage": self.process.cpu_percent(None),
            "process_memory_megabytes": self.process.memory_info().rss / 1e6,
            "load_average": os.getloadavg()[0],
        }
        if self.device.type == "cuda":
            out["torch_cuda_allocated_megabytes"] = torch.cuda.memory_allocated(self.device) / 1e6
        return out


class UsageSampler:
    """Samples every ``every`` seconds on a thread of its own and logs through ``tracker`` at the
    step of the whole seconds since ``began`` (Unix seconds; default: now). No sample at the stop:
    the machine's CPU figure is over the time since the last sample, and a moment is too short to
    mean anything."""

    def __init__(self, tracker, device: torch.device, began: float | None = None, every: float | None = None):
        from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor

        self.tracker, self.began = tracker, time.time() if began is None else began
        self.every = float(os.environ.get(USAGE_ENV, DEFAULT_EVERY)) if every is None else every
        self.monitors = [CPUMonitor(), *_gpu_monitors(device)]
        self.process = ProcessUsage(device)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ablab-system-metrics", daemon=True)

    def start(self) -> UsageSampler:
        if self.every > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stopped.set()
            self._thread.join()

    def _run(self) -> None:
        warned = False
        while not self._stopped.wait(self.every):
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - one sample lost, not the rest of the run's
                if not warned:
                    warned = True
                    print(
                        f"ablab: warning: a system-metrics sample failed ({exc!r}); going on", file=sys.stderr
                    )

    def sample(self) -> dict[str, float]:
        """One sample, logged: the machine's and the process's figures, ``system/``-prefixed."""
        values = dict(self.process.sample())
        for monitor in self.monitors:
            monitor.collect_metrics()
            values |= monitor.aggregate_metrics()
            monitor.clear_metrics()
        metrics = {f"system/{k}": float(v) for k, v in values.items()}
        self.tracker.log_metrics(metrics, step=int(time.time() - self.began))
        return metrics


def _gpu_monitors(device: torch.device) -> list:
    """MLflow's NVIDIA monitor where a CUDA device and ``nvidia-ml-py`` are there."""
    if device.type != "cuda":
        return []
    try:
        from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor

        return [GPUMonitor()]
    except Exception:  # noqa: BLE001 - no NVML (a ROCm build, no nvidia-ml-py): PyTorch's own figure stays
        return []
