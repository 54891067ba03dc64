#!/usr/bin/env bash
# Issue 6's experiment: bytes against accuracy for dynamic and periodic averaging (8 nodes).
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
bench/setup.sh
exec /usr/bin/python3 bench/dynamic/dynamic_experiment.py "$@"
