#!/usr/bin/env bash
# The README's main job: install what is missing, build, and run the most complete job that
# exists. Today: validate and analyse every shipped cluster file.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
for file in configs/*.toml; do
  echo "== $file"
  ./build/daemon/starlingctl topology "$file"
  echo
done
