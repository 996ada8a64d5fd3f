# OneAI backend. `make dev` runs the whole API locally; `make test` runs every check CI runs.
include lambda_build/python.mk
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAM_VENV := .oneai/sam-venv
SAM_STAMP := $(SAM_VENV)/.installed
SAM := $(SAM_VENV)/bin/sam
# The real AI SDK client the chat stream is checked with (node), at the versions package-lock.json pins.
NODE_CLIENT := tests/node
NODE_STAMP := $(NODE_CLIENT)/node_modules/.installed
# A copy of pgserver's PostgreSQL with pgvector 0.8.0 (Supabase's version; pgserver has 0.6.2), built from
# source for the knowledge search's test on both versions (tests/pgvector08.py; about 10 s).
PGVECTOR08_STAMP := .oneai/pg-vector-0.8/.built
export PYTHONPATH := layers/common:.
export SAM_CLI_TELEMETRY := 0
# `sam build` output: the template's target (arm64, what `sam deploy` ships) in .aws-sam/build, and the
# same sources for this machine's architecture, whose artifacts tests/artifact loads (a generated copy of
# the template: lambda_build/arch_template.py says why). sam's cache makes a rebuild of unchanged
# sources take seconds; a fresh clone builds everything.
TARGET_ARCH := arm64
NATIVE_ARCH := $(shell uname -m | sed 's/aarch64/arm64/')
NATIVE_BUILD := .oneai/build-$(NATIVE_ARCH)
RUNTIME := python$(RUNTIME_PYTHON)
SAM_BUILD = ONEAI_BUILD_PYTHON=$(CURDIR)/$(PY) PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM) build --parallel --cached

.PHONY: check-python dev test lint typecheck validate cfn-lint build build-native pytest coverage unit integration e2e bench openapi migrate clean node-client sam pgvector08 chromium

$(STAMP): requirements-dev.txt layers/common/requirements.txt constraints.txt lambda_build/python.mk | check-python
	$(PYTHON) -m venv --clear $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt -c constraints.txt
	@touch $@

$(SAM_STAMP): requirements-sam.txt constraints-sam.txt lambda_build/python.mk | check-python
	$(PYTHON) -m venv --clear $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet -r requirements-sam.txt -c constraints-sam.txt
	@touch $@

# `npm ci` installs exactly the lockfile (and wipes node_modules first, so the stamp is written after it).
$(NODE_STAMP): $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	npm ci --prefix $(NODE_CLIENT) --no-audit --no-fund
	@touch $@

node-client: $(NODE_STAMP)

$(PGVECTOR08_STAMP): tests/pgvector08.py $(STAMP)
	$(PY) -m tests.pgvector08

pgvector08: $(PGVECTOR08_STAMP)

# The widget's browser tests (tests/e2e/test_widget_browser.py) drive Debian's chromium through Playwright
# for Python (pinned in requirements-dev.txt, `executable_path`; never `playwright install`, which would
# download a browser build). Installed here when missing: apt-get needs root (CI runs as root); otherwise
# the target says what to run and fails.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "The widget's browser tests need Debian's chromium at $(CHROMIUM), and installing it needs root:" >&2; \
	  echo "  sudo apt-get install -y chromium    (then run make again)" >&2; \
	  exit 1; \
	fi

chromium: $(CHROMIUM)

dev: $(STAMP)
	$(PY) -m local

# The SAM CLI this repository pins lives in $(SAM_VENV), not on PATH: `make sam ARGS="deploy"`, or run
# $(SAM) directly (`make sam` creates that venv first).
sam: $(SAM_STAMP)
	$(SAM) $(ARGS)

test: lint typecheck validate cfn-lint build build-native pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

validate: $(SAM_STAMP)
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --template template.yaml

cfn-lint: $(SAM_STAMP)
	$(SAM_VENV)/bin/cfn-lint --append-rules cfn_lint_serverless.rules -t template.yaml

# What `sam deploy` ships, checked: architecture and glibc of every binary, complete pins, bytecode.
build: $(STAMP) $(SAM_STAMP)
	ONEAI_BUILD_ARCH=$(TARGET_ARCH) $(SAM_BUILD) --template template.yaml
	$(PY) -m lambda_build.check .aws-sam/build --arch $(TARGET_ARCH) --runtime $(RUNTIME)

build-native: $(STAMP) $(SAM_STAMP)
	$(PY) -m lambda_build.arch_template $(NATIVE_ARCH) $(NATIVE_BUILD)/template.yaml
	ONEAI_BUILD_ARCH=$(NATIVE_ARCH) $(SAM_BUILD) --template $(NATIVE_BUILD)/template.yaml --base-dir . \
	  --build-dir $(NATIVE_BUILD)/build --cache-dir $(NATIVE_BUILD)/cache
	$(PY) -m lambda_build.check $(NATIVE_BUILD)/build --arch $(NATIVE_ARCH) --runtime $(RUNTIME)

# The whole suite under coverage, in every Python process it starts (the local server of the e2e tests
# included: pyproject.toml [tool.coverage]); the per-package figures, and a failure under the floor.
pytest: $(STAMP) $(NODE_STAMP) $(PGVECTOR08_STAMP) $(CHROMIUM)
	rm -rf .oneai/coverage
	$(PY) -m coverage run -m pytest tests
	$(PY) -m coverage combine --quiet
	$(PY) -m tests.coverage_report

# The same run, with coverage's per-file report (missing lines) before the per-package table.
coverage: $(STAMP) $(NODE_STAMP) $(PGVECTOR08_STAMP) $(CHROMIUM)
	rm -rf .oneai/coverage
	$(PY) -m coverage run -m pytest tests
	$(PY) -m coverage combine --quiet
	$(PY) -m tests.coverage_report --files

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP) $(PGVECTOR08_STAMP)
	$(PY) -m pytest tests/integration

e2e: $(STAMP) $(NODE_STAMP) $(CHROMIUM)
	$(PY) -m pytest tests/e2e

# Issue 11: LiteLLM's proxy, the comparison of bench/chat_stream.py, in a venv of its own (never the project's).
LITELLM_VENV := .oneai/bench-litellm-venv
LITELLM_STAMP := $(LITELLM_VENV)/.installed
$(LITELLM_STAMP): bench/requirements-litellm.txt bench/constraints-litellm.txt
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --quiet -r bench/requirements-litellm.txt -c bench/constraints-litellm.txt
	@touch $@

bench: $(STAMP) $(LITELLM_STAMP)
	$(PY) -m bench

openapi: $(STAMP)
	$(PY) -m local.openapi --write

# The database step of a deploy: the migrations, then what runs after them (the user guide's index).
migrate: $(STAMP)
	$(PY) -m oneai.deploy

clean:
	rm -rf $(VENV) .oneai .aws-sam .pytest_cache .mypy_cache .ruff_cache
