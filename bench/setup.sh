#!/usr/bin/env bash
# Installs what the benchmarks need beyond the build: PyTorch for Debian's own Python
# (/usr/bin/python3), which uses the same LibTorch 1.13 build that Starling links, and
# matplotlib for the plots. Idempotent.
set -euo pipefail
if /usr/bin/python3 -c 'import torch, numpy, matplotlib' 2>/dev/null; then
  echo "bench/setup: python3-torch and python3-matplotlib present"
  exit 0
fi
if [[ $EUID -ne 0 ]]; then
  echo "bench/setup: run as root (or: sudo apt-get install python3-torch python3-numpy python3-matplotlib)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3-torch python3-numpy python3-matplotlib
