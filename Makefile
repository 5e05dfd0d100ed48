# Quick start: `make demo` (install, index sample_corpus/, search it) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned to the CPU build this machine carries, so no multi-GB CUDA build is pulled.
TORCH := torch==2.13.0

.PHONY: demo test lint bench install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/semindex index sample_corpus
	$(BIN)/semindex search "effects of sleep on memory" --index sample_corpus/.semindex -k 5
	$(BIN)/semindex similarity "There was a fly drinking from my soup" "There is a fly swimming in my juice" "The stock market fell today"

test: dev
	$(BIN)/python -m pytest -q

lint: dev
	$(BIN)/ruff check indexer search server cli tests bench
	$(BIN)/ruff format --check indexer search server cli tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/scifact.py

clean:
	rm -rf $(VENV) sample_corpus/.semindex .pytest_cache
