# Developer entry points. `make test` is the test command CI runs (.ci/run); `make lab-up` starts the lab.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup binaries demo lab-up lab-down lint test test-unit test-workflow test-lab test-e2e faults bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed  ## Python environment with the project and its dev tools

binaries: setup  ## find or build the lab's Kubernetes binaries and the csi-addons controllers (cached per version)
	$(PY) -m sandbox.binaries
	$(PY) -m sandbox.controller_build

demo: binaries  ## the whole demo: lab up (reused when running), planned failover of pg-prod, status
	@$(VENV)/bin/orchestrate sandbox status >/dev/null 2>&1 || $(VENV)/bin/orchestrate sandbox up
	$(VENV)/bin/orchestrate failover --group pg-prod --yes
	$(VENV)/bin/orchestrate status
	@$(VENV)/bin/orchestrate sandbox status | grep -i "temporal"
	@echo "Inspect the workflow failover/pg-prod in the Temporal Web UI above; 'make lab-down' stops the lab."

lab-up: binaries  ## start dc1, dc2, Temporal, the simulator, the demo groups and a worker
	$(VENV)/bin/orchestrate sandbox up

lab-down: setup
	$(VENV)/bin/orchestrate sandbox down

lint: setup  ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup binaries lint  ## every tier: unit, workflow, lab
	$(VENV)/bin/pytest tests $(PYTEST_ARGS)

test-unit: setup
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

test-workflow: setup
	$(VENV)/bin/pytest tests/workflow $(PYTEST_ARGS)

test-lab: binaries
	$(VENV)/bin/pytest tests/lab $(PYTEST_ARGS)

test-e2e: binaries
	$(VENV)/bin/pytest tests/e2e $(PYTEST_ARGS)

faults: binaries  ## the whole fault matrix: 4 backends x 5 steps x 5 faults + unplanned cases (~1 h); CI runs pg-prod's
	FAULT_GROUPS=all FAULTS_REPORT=$(or $(FAULTS_REPORT),faults-report.json) $(VENV)/bin/pytest tests/faults $(PYTEST_ARGS)

bench: binaries  ## planned-failover overhead, then site failovers of 1, 10, 50, 100 groups (prints figures)
	$(VENV)/bin/python -m benchmarks.failover_overhead --runs 20
	$(VENV)/bin/python -m benchmarks.site_failover --groups 1,10,50,100
