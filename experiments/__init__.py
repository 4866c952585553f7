"""Ablation experiments: specs expanded into trials, run as a sweep through Ray Tune, each trial one
MLflow run, and the command line that drives it all."""
