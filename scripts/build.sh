#!/usr/bin/env bash
# Configures and builds Starling into ./build (Release, -j2 by default: LibTorch's headers are
# heavy and this machine has two cores). BUILD_DIR and JOBS override.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
