# make audit: set up, then run the audit pipeline (dvc repro) on params.yaml and print the verdicts.
# make test:  set up (Python environment, Docker engine, local base image, Slurm packages, Chromium), then
#             run the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export UV_NATIVE_TLS := 1

.PHONY: setup engine slurm browser audit test bench lock clean

$(VENV)/.installed: requirements.lock pyproject.toml
	command -v uv >/dev/null || $(PYTHON) -m pip install -q uv
	uv venv -q --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip sync -q requirements.lock
	VIRTUAL_ENV=$(VENV) uv pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

audit: setup
	dvc repro
	harness report --show --check

# A Docker engine and the registry-free local base image (tests build the team images FROM it).
engine:
	bash containers/local-base/engine.sh

# The packages of a single-node Slurm cluster; the tests start and stop the cluster themselves.
slurm:
	bash tests/slurm/install.sh

# Chromium from Debian: the report test opens report/index.html in it (through Playwright).
browser:
	command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

test: setup engine slurm browser
	pytest

bench: setup engine
	python benchmarks/bench_startup.py
	python benchmarks/bench_core.py
	python benchmarks/bench_docker.py
	python benchmarks/bench_evaluation.py

lock:
	uv pip compile -q requirements.in -o requirements.lock --python-version 3.11

clean:
	rm -rf data weights runs evaluations metrics plots report .dvc/tmp .dvc/cache
