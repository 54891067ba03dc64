#!/usr/bin/env bash
# Installs the benchmarks' peer: PyTorch for Debian's own Python (/usr/bin/python3), which
# uses the same LibTorch 1.13 build that Starling links. Idempotent.
set -euo pipefail
if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  echo "bench/setup: python3-torch present"
  exit 0
fi
if [[ $EUID -ne 0 ]]; then
  echo "bench/setup: run as root (or: sudo apt-get install python3-torch python3-numpy)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3-torch python3-numpy
