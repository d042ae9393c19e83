#!/usr/bin/env bash
# The GPU check in one device call (see benchmarks/gpu_check.py and ../shared/gpu/README.md):
# carry [".gpu-data"] (made by ../shared/gpu/prepare.sh); model/ and torch are all it needs.
cd "$(dirname "$0")/.." && exec python3 benchmarks/gpu_check.py --out "${OUT:-gpu-check-out}" "$@"
