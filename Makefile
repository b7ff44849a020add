# The two commands of the README. Both start from a machine with only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: up test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEVSTAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## make up: install, migrate the embedded database, load the demo factory if empty, serve.
up: $(STAMP)
	$(BIN)/fabriek db upgrade
	$(BIN)/fabriek demo load --if-empty
	$(BIN)/fabriek serve

## make test: ruff, mypy (strict on src/) and the whole pytest suite.
test: $(DEVSTAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .fabriek .pytest_cache .mypy_cache .ruff_cache
