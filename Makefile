# make audit: set up, then run the audit pipeline (dvc repro) on params.yaml and print the verdicts.
# make test:  set up (Python environment, Docker engine, local base image, bubblewrap, Slurm, Chromium), lint,
#             then run the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export UV_NATIVE_TLS := 1

.PHONY: setup lint engine sandbox slurm browser audit test bench stand-ins gpu-check docs lock clean

$(VENV)/.installed: requirements.lock pyproject.toml
	command -v uv >/dev/null || $(PYTHON) -m pip install -q uv
	uv venv -q --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip sync -q --compile-bytecode requirements.lock
	VIRTUAL_ENV=$(VENV) uv pip install -q --no-deps -e .
	touch $@

# The package's own bytecode, written now: where PYTHONDONTWRITEBYTECODE is set (CI images), every command
# would compile the harness again at its start.
setup: $(VENV)/.installed
	python -m compileall -q harness

# dvc repro --quiet: each stage's own lines, not DVC's advice; then the report, made from the evaluations
# (the report is not a DVC output: a fresh clone whose dvc.lock already matches runs no report stage) and
# its story told once.
audit: setup sandbox
	dvc repro --quiet
	harness report --check

# A Docker engine and the registry-free local base image (tests build the team images FROM it).
engine:
	bash containers/local-base/engine.sh

# bubblewrap: the sandbox the local runner holds team code in (Debian's package).
# Without root or apt it says so and goes on (fatal with CI=true): untrusted teams are then refused locally.
sandbox:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	  bubblewrap >/dev/null 2>&1 || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install \
	  -y -q bubblewrap >/dev/null; }; }; } || { echo "sandbox: bubblewrap could not be installed: the local runner \
	will refuse untrusted teams" >&2; [ "$${CI:-}" != true ]; }

# The packages of a single-node Slurm cluster; the tests start and stop the cluster themselves.
slurm:
	bash tests/slurm/install.sh

# Chromium from Debian: the report test opens report/index.html in it (through Playwright).
browser:
	command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

# ruff (pyflakes, pycodestyle, import order, bugbear, pyupgrade) and mypy on the whole package.
lint: setup
	ruff check harness tests benchmarks
	mypy

test: setup lint engine sandbox slurm browser
	pytest

bench: setup engine
	python benchmarks/bench_startup.py
	python benchmarks/bench_core.py
	python benchmarks/bench_docker.py
	python benchmarks/bench_evaluation.py
	$(MAKE) --no-print-directory stand-ins
	python benchmarks/bench_evaluation.py --cache $(STAND_INS) --images 8 --repeat 1 \
	  --metrics psnr,ssim,niqe,lpips,dists,musiq,maniqa,clipiqa
	python benchmarks/bench_metric_costs.py --cache $(STAND_INS)

# Stand-in metric weights (seeded, the same bytes every build) for the benchmarks: numbers they give measure nothing.
STAND_INS := .cache/stand-in-metric-weights
stand-ins: setup
	@[ -f $(STAND_INS)/stand-in.json ] && grep -q '"complete": true' $(STAND_INS)/stand-in.json || \
	  harness fetch stand-in-metric-weights $(STAND_INS)

# The scoring path on one NVIDIA GPU (under ten minutes from a fresh clone); without a GPU it says so, exit 1.
gpu-check: setup
	python benchmarks/gpu_check.py

# docs/status.md, made from the manifests (a test holds the committed copy to them).
docs: setup
	harness list --markdown > docs/status.md

lock:
	uv pip compile -q requirements.in -o requirements.lock --python-version 3.11

clean:
	rm -rf data weights runs evaluations metrics plots report .dvc/tmp .dvc/cache
