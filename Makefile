# The commands the README names. Each one installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lab lint

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

# Train the demo preset on OASIS if present, else on the bundled demo set; pictures land in images/.
demo: setup
	$(PY) -m ganlib train --preset demo --export images

# Everything, notebooks included: tests/test_notebooks.py runs each one under nbval in smoke mode.
# GANLIB_SMOKE=1 so that any notebook a test executes takes the smoke preset.
# No bytecode or pytest cache in the tree, and every test trains into its own temporary runs folder.
test: setup
	GANLIB_SMOKE=1 PYTHONDONTWRITEBYTECODE=1 $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# Jupyter refuses root unless told; containers and CI machines often run as root.
lab: setup
	$(VENV)/bin/jupyter lab notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

lint: setup
	$(VENV)/bin/ruff check ganlib tests benchmarks scripts
