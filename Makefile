# The two commands of the README:
#   make demo   create .venv, install nxgid and everything it needs, run `nxgid demo`
#   make test   the same environment and pygid's own (.venv-bench), then ruff and the
#               whole test suite (pygid's real reader runs on every kind of nxgid file)
PYTHON ?= python3
VENV := .venv
BENCH_VENV := .venv-bench
BIN := $(VENV)/bin
DEMO_DIR ?= demo-beamtime
PYTEST_ARGS ?=

.PHONY: install demo test lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/nxgid demo $(DEMO_DIR) --overwrite

lint: install
	$(BIN)/ruff check .

test: lint $(BENCH_VENV)/.installed
	NXGID_PYGID_PYTHON=$(CURDIR)/$(BENCH_VENV)/bin/python $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache

# make bench   conversion benchmark (docs/performance.md): nxgid vs pygid vs pyFAI.
# pygid pins pytest<9, so it lives in its own environment, .venv-bench (also used by
# the tests that run pygid's reader on nxgid's files).
BENCH_ARGS ?=

$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e . pygid==0.2.20
	touch $@

.PHONY: bench
bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/bench_conversion.py $(BENCH_ARGS)
