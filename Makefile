# The two entry points of the README; both install what they need into .venv first.
#   make demo   the main job: the smoke ablation sweep (local Ray, MLflow sqlite under mlruns/)
#   make test   the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install

install: $(STAMP)

# torch first, pinned: this machine holds its CPU build; unpinned, pip would pull CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/ablab run experiments/specs/smoke.yaml

test: $(STAMP)
	$(BIN)/python -m pytest
