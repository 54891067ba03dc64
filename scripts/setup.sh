#!/usr/bin/env bash
# Installs exactly the Debian 12 packages Starling needs to build, test and run its main job.
# Idempotent: when everything is present it only checks (about a second) and installs nothing.
# python3-torch (the benchmarks' peer) is installed by bench/setup.sh, not here.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libtorch-dev libopenblas0-pthread   # LibTorch 1.13 (CPU); OpenBLAS: ~4.6x faster than reference BLAS
  libzmq3-dev cppzmq-dev              # transport
  libboost-dev                        # Boost.Asio (header-only): control socket, metrics, timers
  libspdlog-dev libfmt-dev            # logging
  libtomlplusplus-dev                 # cluster files
  nlohmann-json3-dev                  # control protocol, metrics lines
  zlib1g-dev                          # reading the .gz IDX datasets
  libcli11-dev                        # command lines
  libgtest-dev                        # tests
  dataset-fashion-mnist               # /usr/share/datasets/fashion-mnist
  iproute2 procps                     # ip, pkill: fault tests
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# LibTorch must run on OpenBLAS, not the reference BLAS Debian may have selected by hand.
blas_alt=libblas.so.3-x86_64-linux-gnu
if current=$(update-alternatives --query "$blas_alt" 2>/dev/null | awk '/^Value:/{print $2}'); then
  if [[ "$current" != *openblas* ]]; then
    if [[ $EUID -eq 0 ]]; then
      echo "setup: selecting OpenBLAS for $blas_alt (was $current)"
      update-alternatives --auto "$blas_alt" >/dev/null
    else
      echo "setup: warning: $blas_alt points at $current; LibTorch will be slow" >&2
    fi
  fi
fi
echo "setup: all packages present"
