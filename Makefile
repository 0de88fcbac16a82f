# Quick start: `make run` starts the relay on 127.0.0.1:2525 (SQLite under var/),
# `make test` runs the whole test suite. Both create .venv on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test demo bench bench-features clean

run: $(STAMP)
	$(BIN)/relay --config relay.toml serve

test: $(STAMP)
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/relay demo

bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-features: $(STAMP)
	$(BIN)/python bench/features.py

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) var build *.egg-info
