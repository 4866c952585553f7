"""Ablation specs: the schema of the YAML, and its expansion into the plan's trials."""
