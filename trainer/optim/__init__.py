"""What drives the updates: the loss, the optimizers, the learning-rate schedules and the run's length."""
