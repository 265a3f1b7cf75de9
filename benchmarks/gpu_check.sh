#!/usr/bin/env bash
# The accelerator checks in one prepared run (for the `device` tool or any NVIDIA GPU machine
# with JAX's CUDA build): the cuDNN attention parity and bf16 tests, then the MFU of the
# reduced-depth 7B-shaped train step with the fused cuDNN kernel and with the chunked einsum,
# and with the cuDNN kernel and the layers scanned.
# Logs and JSON go to $OUT (default /tmp/vaujax_gpu). About 5 minutes on one H200.
#
# The `device` tool's image has JAX (CUDA), flax, optax, orbax, torch and transformers, but not
# grain, array-record, portpicker or ml-collections, which `vaujax.train` imports. Fetch their
# Python 3.12 wheels here with `make gpu-wheels` (into .whl/, git-ignored) and carry .whl: this
# script installs whatever lies in .whl/ into $VAUJAX_SITE (default /tmp/vaujax_site) first.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vaujax_gpu}
mkdir -p "$OUT"
PY=${PY:-python3}
SITE=${VAUJAX_SITE:-/tmp/vaujax_site}
if compgen -G ".whl/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl || { echo "gpu_check: installing .whl/ failed" >&2; exit 1; }
  export PYTHONPATH="$SITE:${PYTHONPATH:-}"
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}."
# Eight files at most come back from the `device` tool's $OUT: this script writes eight.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
$PY -c "import jax; print(jax.__version__, jax.devices())" 2>&1 | tee -a "$OUT/device.txt"
# Fail at once, not minutes in, when a module that the checks import is missing.
$PY -c "import benchmarks.mfu, vaujax.train.loop, tests.llama_reference" 2>&1 \
  | tee -a "$OUT/device.txt" \
  || { echo "gpu_check: a module is missing ($OUT/device.txt)" >&2; exit 1; }
# tests/conftest.py defaults to 8 simulated CPU devices: point the tests at the GPU instead (the
# mesh tests skip). The fp32 parity tests compare against PyTorch on the CPU to 1e-5, so the
# GPU's fp32 matmuls must not run as TF32. (VAUJAX_TEST_PLATFORMS=cpu: a dry run on a CPU.)
JAX_PLATFORMS=${VAUJAX_TEST_PLATFORMS:-cuda} JAX_DEFAULT_MATMUL_PRECISION=highest \
  $PY -m pytest -q -rs -p no:cacheprovider tests/test_llama.py 2>&1 | tee "$OUT/test_llama.log"
for attention in cudnn chunked; do
  VAUJAX_MFU_ATTENTION=$attention $PY -m benchmarks --only=mfu --json="$OUT/mfu_$attention.json" \
    2>&1 | tee "$OUT/mfu_$attention.log"
done
# The paper config's layer scan (models/llama.py: scan_layers) against the unrolled cudnn row.
VAUJAX_MFU_ATTENTION=cudnn VAUJAX_MFU_SCAN=1 \
  $PY -m benchmarks --only=mfu --json="$OUT/mfu_cudnn_scan.json" \
  2>&1 | tee "$OUT/mfu_cudnn_scan.log"
