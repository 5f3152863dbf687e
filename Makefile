# ganzoo — `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-slow lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -c constraints.txt torch torchvision
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install ganzoo with its dev tools (torch pinned by constraints.txt)

train: $(STAMP)  ## train SPADE on the embedded synthetic scenes (CPU, < 10 min); extra overrides: make train ARGS="..."
	$(PY) -m ganzoo.train $(ARGS)

test: $(STAMP)  ## run the test suite (slow quality runs excluded)
	$(PY) -m pytest -m "not slow" $(ARGS)

test-slow:  $(STAMP)  ## run only the long quality runs
	$(PY) -m pytest -m slow $(ARGS)

lint: $(STAMP)  ## ruff, mypy on src/, import-linter for the direction of imports
	$(VENV)/bin/ruff check src tests experiments
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)  ## run the benchmarks under experiments/benchmarks (results appended under results/)
	$(PY) experiments/benchmarks/synthetic_data.py
	$(PY) experiments/benchmarks/train_throughput.py

clean:  ## remove caches and run outputs (keeps .venv)
	rm -rf outputs .pytest_cache .mypy_cache .ruff_cache
