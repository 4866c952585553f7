"""Running a sweep: the driver, Ray and Tune, each trial's worker, its MLflow runs, the progress printed."""
