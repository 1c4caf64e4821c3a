# oasis: `make serve` sets up and serves the default models; `make test` runs the suite.
# The set-up is one stamp file: a second `make install` with nothing changed does nothing.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.oasis-installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
# llama-cpp-python builds from source once (about 7 minutes on 2 cores).
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

.PHONY: install serve test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/install.sh
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/install.sh
	@touch $@

serve: install
	$(BIN)/oasis serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/chat_overhead.py

clean:
	rm -rf $(VENV)
