#!/usr/bin/env bash
# Issue 4's benchmark: Starling gossip vs Starling local, PyTorch PeriodicModelAverager and
# PyTorch DDP, measured in one run. ROUNDS (default 3) repeats it.
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
bench/setup.sh
exec /usr/bin/python3 bench/cluster/cluster_bench.py --rounds "${ROUNDS:-3}" "$@"
