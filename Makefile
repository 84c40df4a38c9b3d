# The two commands of the README:
#   make demo   create .venv, install nxgid and everything it needs, run `nxgid demo`
#   make test   the same environment, then ruff and the whole test suite
PYTHON ?= python3
VENV := .venv
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

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache

# make bench   conversion benchmark (docs/performance.md): nxgid vs pygid vs pyFAI.
# pygid pins pytest<9, so it lives in its own environment, .venv-bench.
BENCH_VENV := .venv-bench
BENCH_ARGS ?=

$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e . pygid==0.2.20
	touch $@

.PHONY: bench
bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/bench_conversion.py $(BENCH_ARGS)
