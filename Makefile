# Two commands do all set-up on a fresh machine with only python3 and pip:
#   make demo   - create .venv, install Roost, run the demo
#   make test   - create .venv (and .venv-sdk3 for SDK v3), install Roost, check lint, format and types,
#                 run the whole test suite
#                 (on SQLite and on a throwaway PostgreSQL, and the console in chromium; both installed
#                 from Debian's packages where possible)
# While developing: make test-fast (no end-to-end training), make lint, make format,
# make screenshots (the console's browser test, keeping its pictures in docs/console).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU/CUDA torch build is chosen by pip for this exact pin; installing it
# before Roost stops pip from resolving torch itself (and pulling other builds).
TORCH := torch==2.13.0
PYTEST := OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest

# SDK v3 owns the `sagemaker` package as v2 does, so it gets a virtual environment of its own
SDK3 := .venv-sdk3
SDK3_STAMP := $(SDK3)/.installed

.PHONY: demo test test-fast lint format install clean screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# demo images; its own loader needs TensorFlow, which Roost does not use
	$(BIN)/python -m pip install --quiet --no-deps "animal-mnist==0.4"
	touch $(STAMP)

# pip learnt --group (pyproject's dependency groups, without the project itself) in 25.1
$(SDK3_STAMP): pyproject.toml
	test -x $(SDK3)/bin/python || $(PYTHON) -m venv $(SDK3)
	$(SDK3)/bin/python -m pip install --quiet "pip>=25.1,<27"
	$(SDK3)/bin/python -m pip install --quiet --group sdk3
	touch $(SDK3_STAMP)

demo: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE ./examples/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# the suite starts a PostgreSQL cluster of its own and drives chromium; the script installs them where it can
ENSURE := ./scripts/ensure-debian-packages.sh
POSTGRES := $(ENSURE) "the PostgreSQL runs of the tests" 'ls /usr/lib/postgresql/*/bin/pg_ctl || command -v pg_ctl' postgresql
BROWSER := $(ENSURE) "the console's browser tests" 'command -v chromium && command -v chromedriver' chromium chromium-driver fonts-dejavu-core

test: lint $(SDK3_STAMP)
	$(POSTGRES)
	$(BROWSER)
	$(PYTEST)

screenshots: $(STAMP)
	$(BROWSER)
	ROOST_SCREENSHOTS=docs/console $(PYTEST) tests/web/test_console_browser.py

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

clean:
	rm -rf $(VENV) $(SDK3) demo .pytest_cache .mypy_cache .ruff_cache
