# Facegate: the two commands a user runs on a fresh machine.
#   make test   lint, types and the whole test suite against real services
#   make test-fast / test-fleet   unit and integration tests only / the Ansible rollout tests only
#   make demo   the end-to-end demo on embedded defaults (DEMO_ARGS='--duration 0': until Ctrl-C)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: test test-fast test-fleet demo demo-clean lint typecheck pytest models services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[cpu,test,demo]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

models: $(STAMP)
	$(BIN)/facegate models fetch

services:
	bash scripts/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) models services
	$(BIN)/pytest

test: lint typecheck pytest

# Quicker loops while editing (CI runs `make test`, the whole suite):
test-fast: lint typecheck $(STAMP) models services
	$(BIN)/pytest -m "not system"

test-fleet: $(STAMP) models services
	$(BIN)/pytest -m fleet

DEMO_ARGS ?=
demo: $(STAMP) models
	bash scripts/demo.sh $(DEMO_ARGS)

demo-clean: $(STAMP)
	$(BIN)/facegate demo --clean

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
