# Facegate: the two commands a user runs on a fresh machine.
#   make test   lint, types and the whole test suite against real services
#   make test-fast / test-fleet   unit and integration tests only / the Ansible rollout tests only
#   make demo   the end-to-end demo on embedded defaults (DEMO_ARGS='--duration 0': until Ctrl-C)
#   make screenshots   regenerate docs/console/*.png (on request; CI never rewrites docs/)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: test test-fast test-fleet demo demo-clean lint typecheck pytest models services assets browser screenshots clean

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

# The console's third-party assets (htmx, Pico CSS, Swagger UI, axe-core) from the npm registry, pinned in
# web/package-lock.json, copied into central/console/static/vendor/ (npm from apt when missing).
assets:
	bash scripts/build-assets.sh

# Debian's chromium for the console's browser tests (Playwright drives it by its path).
browser:
	@command -v chromium >/dev/null 2>&1 || bash scripts/apt-install.sh chromium

# docs/console/*.png from the demo's public-domain photos (never run by CI: CI does not rewrite docs/).
screenshots: $(STAMP) models services assets browser
	$(BIN)/python -m tests.support.screenshots docs/console

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) models services assets browser
	$(BIN)/pytest

test: lint typecheck pytest

# Quicker loops while editing (CI runs `make test`, the whole suite):
test-fast: lint typecheck $(STAMP) models services assets browser
	$(BIN)/pytest -m "not system"

test-fleet: $(STAMP) models services assets
	$(BIN)/pytest -m fleet

DEMO_ARGS ?=
demo: $(STAMP) models assets
	bash scripts/demo.sh $(DEMO_ARGS)

demo-clean: $(STAMP)
	$(BIN)/facegate demo --clean

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
