"""The shared trainer: :func:`ablab.trainer.run.train`, one complete run from a typed config, which
the CLI, Ray Tune's trials and the tests all call. It knows nothing of sweeps."""
