#!/usr/bin/env bash
# GPU benchmark for one device call (<= 10 min, builds nothing): the train stage on SmolLM2 in bf16
# with ZeRO-2 over every visible GPU, then the evaluate stage (HF backend); prints tokens/s, MFU and
# peak memory (benchmarks/gpu.py; results in docs/benchmarks.md). Refuses with one line where no
# CUDA GPU is visible.
#   bash benchmarks/gpu.sh [OUT]          PYTHON=... to choose the interpreter (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "${PYTHON:-python3}" benchmarks/gpu.py "$@"
