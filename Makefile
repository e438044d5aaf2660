# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= engine/sample.toml

.PHONY: run test bench lint clean clean-data

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

# `mamoru init` creates the embedded database and the key files on the first run and only
# says where they are afterwards; no other command creates a database.
run: $(VENV)/.installed
	$(VENV)/bin/mamoru init --config $(CONFIG)
	$(VENV)/bin/mamoru serve --config $(CONFIG)

# Three pytest workers: most tests wait on servers and subprocesses, not on the CPU, so even two
# cores run three at once (each worker starts its own embedded PostgreSQL).
PYTEST_WORKERS ?= 3

test: $(VENV)/.installed-test
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(PY) bench/throughput.py --messages 30000

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check engine inbound admin_api cli bench tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

# Build products only (the embedded server, which runs from .venv, is stopped first): never
# the database or the keys in var/.
clean:
	@if [ -x $(VENV)/bin/mamoru ] && [ -d var/pgdata ]; then $(VENV)/bin/mamoru db stop --config $(CONFIG) || true; fi
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

# The database and everything else in var/ except var/keys (the keys are never deleted by make:
# a backup of the database is useless without them). Stops the embedded server first.
clean-data:
	@if [ -x $(VENV)/bin/mamoru ]; then $(VENV)/bin/mamoru db stop --config $(CONFIG) || true; fi
	@if [ -d var ]; then find var -mindepth 1 -maxdepth 1 ! -name keys -exec rm -rf {} +; fi
