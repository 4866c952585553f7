"""What a run records: the tracker interface, its MLflow run, writes a store has not taken yet, the names."""
