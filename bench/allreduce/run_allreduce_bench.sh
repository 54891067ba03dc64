#!/usr/bin/env bash
# Issue 5's benchmark: Starling's ring allreduce against Gloo (world 2, 4, 8; 1, 16, 100 MiB;
# tcp and ipc), the memory-copy bound, and allreduce-mode training against PyTorch DDP.
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
bench/setup.sh
exec /usr/bin/python3 bench/allreduce/allreduce_bench.py "$@"
