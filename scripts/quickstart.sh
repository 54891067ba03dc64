#!/usr/bin/env bash
# The README's main job: install what is missing, build, and run the embedded default cluster
# (4 starlingd on a ring on this machine, mlp on Fashion-MNIST, gossip every 8 steps).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
exec ./build/daemon/starlingctl up "$@"
