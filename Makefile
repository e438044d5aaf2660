# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= engine/sample.toml

.PHONY: run test bench lint clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mamoru needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/mamoru serve --config $(CONFIG)

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(PY) bench/throughput.py --messages 30000

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check engine inbound admin_api cli bench tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

clean:
	rm -rf $(VENV) var .pytest_cache
