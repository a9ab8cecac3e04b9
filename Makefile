# The two README commands: `make pipeline` and `make test`. Both create or reuse .venv.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sora-installed
LOCK := requirements.lock
LOCK_VENV := .lock-venv
PYTHON ?= python3

export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup lock pipeline test test-fast lint format plots mlflow-ui prefect-ui clean

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first, pinned: our machines resolve it to a local CPU wheel. Elsewhere a plain install pulls the
	@# multi-GB CUDA build; for CPU add --index-url https://download.pytorch.org/whl/cpu (TORCH_PIP_ARGS).
	$(PY) -m pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	@# everything else exactly as locked (versions and file hashes); `make lock` refreshes the lock
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	@touch $(STAMP)

setup: $(STAMP)

lock:  ## re-resolve pyproject.toml's ranges in a fresh venv and rewrite requirements.lock (then commit it)
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[dev]"
	$(LOCK_VENV)/bin/python -m sora.lock --python $(LOCK_VENV)/bin/python --out $(LOCK)
	rm -rf $(LOCK_VENV)

pipeline: setup  ## run the whole pipeline through the Prefect flow on the built-in defaults
	$(VENV)/bin/sora run

test: lint  ## the whole suite: unit tests and the slow integration tests (what CI runs)
	$(PY) -m pytest -q

test-fast: setup  ## unit tests only
	$(PY) -m pytest -q -m "not slow"

lint: setup  ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

plots: setup  ## dvc plots show as a page that renders offline (dvc_plots/index.html)
	$(VENV)/bin/sora plots

mlflow-ui: setup
	$(VENV)/bin/mlflow server --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000 --workers 1

prefect-ui: setup
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port 4200

clean:
	rm -rf data/raw data/processed data/vocab.json models .sora
