# Two commands on a fresh clone: `make titanic` (quick start) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= dev

.PHONY: setup titanic test lint clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

setup: $(STAMP)

titanic: setup
	$(PY) scripts/train.py titanic --recipe default

test: setup
	$(PY) -m ruff check common competitions scripts tests
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check common competitions scripts tests

clean-venv:
	rm -rf $(VENV)
