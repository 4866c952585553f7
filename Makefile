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

# Two pytest sessions at once. The integration tests that start Ray, servers and sweeps run one
# after another as they must (they time what they kill) and leave a core idle much of the time;
# beside them, at a lower priority, run the unit tests (those marked `waits` first), then the
# integration tests that train or open a store in their own process (marked `in_process` by
# tests/conftest.py). The second session's report is printed when both have ended, then both exit
# codes; it fails if either does.
test: $(STAMP) chromium
	@beside_log=$$(mktemp); trap 'rm -f "$$beside_log"' EXIT; \
	PYTHONUNBUFFERED=1 nice -n 5 $(BIN)/python -m pytest -m "not integration or in_process" \
	  -o cache_dir=.pytest_cache/beside >"$$beside_log" 2>&1 & beside=$$!; \
	trap 'kill $$beside 2>/dev/null; exit 130' INT TERM; \
	$(BIN)/python -m pytest -m "integration and not in_process"; integration=$$?; \
	echo "waiting for the unit and in-process tests (their log: $$beside_log)"; wait $$beside; besides=$$?; \
	echo "==== the unit tests and the in-process integration tests, run beside the others ===="; \
	cat "$$beside_log"; \
	echo "make test: the integration tests with Ray and servers exited $$integration, the others $$besides"; \
	exit $$(( $$integration ? $$integration : $$besides ))
