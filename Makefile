# OneAI backend. `make dev` runs the whole API locally; `make test` runs every check CI runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAM_VENV := .oneai/sam-venv
SAM_STAMP := $(SAM_VENV)/.installed
SAM := $(SAM_VENV)/bin/sam
# The real AI SDK client the chat stream is checked with (node), at the versions package-lock.json pins.
NODE_CLIENT := tests/node
NODE_STAMP := $(NODE_CLIENT)/node_modules/.installed
export PYTHONPATH := layers/common:.
export SAM_CLI_TELEMETRY := 0

.PHONY: dev test lint typecheck validate pytest coverage unit integration e2e bench openapi migrate clean node-client

$(STAMP): requirements-dev.txt layers/common/requirements.txt constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt -c constraints.txt
	@touch $@

$(SAM_STAMP): requirements-sam.txt constraints-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet -r requirements-sam.txt -c constraints-sam.txt
	@touch $@

# `npm ci` installs exactly the lockfile (and wipes node_modules first, so the stamp is written after it).
$(NODE_STAMP): $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	npm ci --prefix $(NODE_CLIENT) --no-audit --no-fund
	@touch $@

node-client: $(NODE_STAMP)

dev: $(STAMP)
	$(PY) -m local

test: lint typecheck validate pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

validate: $(SAM_STAMP)
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --template template.yaml

# The whole suite under coverage, in every Python process it starts (the local server of the e2e tests
# included: pyproject.toml [tool.coverage]); the per-package figures, and a failure under the floor.
pytest: $(STAMP) $(NODE_STAMP)
	rm -rf .oneai/coverage
	$(PY) -m coverage run -m pytest tests
	$(PY) -m coverage combine --quiet
	$(PY) -m tests.coverage_report

# The same run, with coverage's per-file report (missing lines) before the per-package table.
coverage: $(STAMP) $(NODE_STAMP)
	rm -rf .oneai/coverage
	$(PY) -m coverage run -m pytest tests
	$(PY) -m coverage combine --quiet
	$(PY) -m tests.coverage_report --files

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP)
	$(PY) -m pytest tests/integration

e2e: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest tests/e2e

bench: $(STAMP)
	$(PY) -m bench

openapi: $(STAMP)
	$(PY) -m local.openapi --write

migrate: $(STAMP)
	$(PY) -m oneai.db.migrate

clean:
	rm -rf $(VENV) .oneai .pytest_cache .mypy_cache .ruff_cache
