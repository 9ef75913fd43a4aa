# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The clients a SageMaker user runs against the server (SDK v2, AWS CLI v1), for the tests
# that run them: a virtualenv of their own, as both pin older libraries than the project.
CLIENTS := .venv-clients
CLIENTS_STAMP := $(CLIENTS)/.installed

.PHONY: install clients postgres-server browser demo test test-slow check format lint types bench clean

# torch comes first from a CPU-only wheel in pip's find-links when one is there (the
# registry's default Linux wheel brings several GB of CUDA libraries), else from the
# registry with the [huggingface] extra; its own dependencies come with the extra.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-index --no-deps torch 2>/dev/null || true
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,huggingface,postgres,ray]'
	touch $(STAMP)

install: $(STAMP)

$(CLIENTS_STAMP): constraints-clients.txt
	$(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/pip install --quiet --upgrade pip
	$(CLIENTS)/bin/pip install --quiet -c constraints-clients.txt 'sagemaker>=2,<3' 'awscli>=1,<2'
	touch $(CLIENTS_STAMP)

clients: $(CLIENTS_STAMP)

# The store tests start PostgreSQL servers of their own (initdb, pg_ctl): Debian's package
# brings the binaries when they are absent (as root; otherwise it says what to install).
postgres-server:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing PostgreSQL's server for the store tests (apt-get install postgresql)"; \
		apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "The store tests need PostgreSQL's server (initdb, pg_ctl): install Debian's postgresql package" >&2; \
		exit 1; \
	fi

# The dashboard's browser tests drive Debian's headless Chromium through Playwright (from
# pip, without its own browser download): the package is installed when absent (as root).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Chromium for the dashboard's browser tests (apt-get install chromium)"; \
		apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "The dashboard's browser tests need Chromium: install Debian's chromium package" >&2; \
		exit 1; \
	fi

demo: $(STAMP)
	BATCHTRANSFORM_HOME=$(CURDIR)/.demo/home $(BIN)/python examples/demo/run_demo.py $(CURDIR)/.demo

test: $(STAMP) $(CLIENTS_STAMP) postgres-server browser
	$(BIN)/pytest -q -m "not slow" --durations=15

# The long fault cases, which CI runs as well.
test-slow: $(STAMP) postgres-server browser
	$(BIN)/pytest -q -m slow --durations=10

bench: $(STAMP)
	$(BIN)/python -m benchmarks

format: $(STAMP)
	$(BIN)/ruff format batchtransform tests examples benchmarks

lint: $(STAMP)
	$(BIN)/ruff format --check batchtransform tests examples benchmarks
	$(BIN)/ruff check batchtransform tests examples benchmarks

types: $(STAMP)
	$(BIN)/mypy

check: lint types test

clean:
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache
