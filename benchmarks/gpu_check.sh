#!/usr/bin/env bash
# The accelerator checks in one prepared run (for the `device` tool or any NVIDIA GPU machine
# with JAX's CUDA build): the cuDNN attention parity and bf16 tests, then the MFU of the
# reduced-depth 7B-shaped train step with the fused cuDNN kernel and with the chunked einsum,
# and with the cuDNN kernel and the layers scanned.
# Logs and JSON go to $OUT (default /tmp/vaujax_gpu). About 5 minutes on one H200.
#
# A machine without ml-collections needs its wheel: pip download --no-deps ml-collections -d .whl
# here, then on the machine: pip install --no-index --no-deps --target /tmp/site .whl/*.whl and
# PYTHONPATH=/tmp/site:. before this script.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vaujax_gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:-.}:."
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
$PY -c "import jax; print(jax.__version__, jax.devices())" | tee -a "$OUT/device.txt"
$PY -m pytest -q -p no:cacheprovider tests/test_llama.py 2>&1 | tee "$OUT/test_llama.log"
for attention in cudnn chunked; do
  VAUJAX_MFU_ATTENTION=$attention $PY -m benchmarks mfu --json "$OUT/mfu_$attention.json" \
    2>&1 | tee "$OUT/mfu_$attention.log"
done
# The paper config's layer scan (models/llama.py: scan_layers) against the unrolled cudnn row.
VAUJAX_MFU_ATTENTION=cudnn VAUJAX_MFU_SCAN=1 \
  $PY -m benchmarks mfu --json "$OUT/mfu_cudnn_scan.json" \
  2>&1 | tee "$OUT/mfu_cudnn_scan.log"
