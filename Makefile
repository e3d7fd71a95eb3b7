# The README's two commands: `make demo` (the main job) and `make test` (every test).
# Both set up .venv on first use; nothing else needs installing by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements/constraints.txt | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[all,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(PY) -m headwater_airflow.demo

test: setup
	scripts/ensure-postgres
	scripts/ensure-redis
	scripts/ensure-system-deps
	$(PY) -m pytest -n 2 --dist loadgroup -q

lint: setup
	$(VENV)/bin/ruff check .
