# Developer entry points. `make test` is the test command CI runs (.ci/run); `make lab-up` starts the lab.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup binaries lab-up lab-down lint test test-unit test-workflow test-lab

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed  ## Python environment with the project and its dev tools

binaries: setup  ## find or build the lab's Kubernetes binaries (cached per version)
	$(PY) -m sandbox.binaries

lab-up: binaries  ## start dc1, dc2 and Temporal
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
