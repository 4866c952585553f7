# The two entry points of the README; both install what they need into .venv first.
#   make demo   the main job: the smoke ablation sweep and its report (local Ray, MLflow sqlite under mlruns/)
#   make test   the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install chromium

install: $(STAMP)

# torch first, pinned: this machine holds its CPU build; unpinned, pip would pull CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,server]'
	touch $@

# The report is written also when a trial failed (it lists why); the run's exit code is kept.
demo: $(STAMP)
	$(BIN)/ablab run experiments/specs/smoke.yaml; status=$$?; \
	  $(BIN)/ablab report experiments/specs/smoke.yaml --out reports/smoke && exit $$status

# The report tests render the HTML in headless Chromium (Debian's package).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

# Two pytest sessions at once: the integration tests, one after another as they must be (they
# start Ray, servers and trials, and time what they kill), leave a core idle much of the time;
# the unit tests run beside them (the tests marked `waits` go first). The unit session's report is
# printed when both have ended, then both exit codes; it fails if either session does.
test: $(STAMP) chromium
	@unit_log=$$(mktemp); trap 'rm -f "$$unit_log"' EXIT; \
	PYTHONUNBUFFERED=1 $(BIN)/python -m pytest -m "not integration" -o cache_dir=.pytest_cache/unit \
	  >"$$unit_log" 2>&1 & unit=$$!; \
	trap 'kill $$unit 2>/dev/null; exit 130' INT TERM; \
	$(BIN)/python -m pytest -m integration; integration=$$?; \
	echo "waiting for the unit tests (their log: $$unit_log)"; wait $$unit; units=$$?; \
	echo "==== the unit tests, run beside the integration tests ===="; cat "$$unit_log"; \
	echo "make test: the integration tests exited $$integration, the unit tests $$units"; \
	exit $$(( $$integration ? $$integration : $$units ))
