#!/usr/bin/env bash
# The CUDA path, end to end, on a machine with an NVIDIA GPU and a CUDA build of PyTorch:
#   build   Starling against the LibTorch inside that PyTorch (into build-cuda/)
#   unit    every test outside cluster_tests (the CudaTrainer tests run where LibTorch sees a GPU)
#   job     the main job, `starlingctl up` on the embedded default (device "auto" picks a GPU)
#   tta     time to 88% (mlp) and 90% (cnn) test accuracy on one node, on the GPU
#   bench   training throughput, Starling against PyTorch on the same GPU (bench/run_training_bench.sh)
#   cluster the multi-process tests (cluster_tests: gossip, allreduce, dynamic, faults, control,
#           security), daemons on the GPU, in CLUSTER_SHARDS (default 4) shards side by side
#
# Usage: scripts/gpu_check.sh [--debs DIR] [--out DIR] [--stages "build unit job tta bench cluster"]
#   --debs DIR  first unpack the Debian 12 packages in DIR (ZeroMQ, cppzmq, spdlog, fmt, toml++,
#               nlohmann-json, CLI11, Boost headers, GoogleTest, zlib headers, pkgconf and their
#               libraries) into a private prefix: for a GPU machine that has none of them and no
#               network. README.md ("Checking the CUDA path") says how to download them.
#   --out DIR   where logs go (default: gpu-check-out/), with the main job's run directory
# Each stage's log is DIR/<stage>.log; a summary line per stage is printed at the end. The exit
# status is non-zero if any stage failed.
set -uo pipefail

debs=""
out="gpu-check-out"
stages="build unit job tta bench cluster"
while (($#)); do
  case $1 in
    --debs) debs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --stages) stages=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
# Paths are the caller's, relative to where it ran; the stages run from the repository root.
if [[ -n $debs ]]; then
  [[ -d $debs ]] || { echo "gpu_check: --debs $debs is not a directory" >&2; exit 2; }
  debs=$(cd "$debs" && pwd)
fi
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BUILD_DIR=build-cuda
JOBS=${JOBS:-$(nproc)}

# --- dependencies from Debian packages, in a prefix of their own -------------------------------
cmake_extra=()
if [[ -n $debs ]]; then
  prefix=$PWD/$BUILD_DIR-deps
  lib=$prefix/usr/lib/x86_64-linux-gnu
  rm -rf "$prefix" && mkdir -p "$prefix/extra-lib"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$prefix" || exit 1; done
  # The .pc files say prefix=/usr, and name private requirements nobody here links statically.
  for pc in "$lib"/pkgconfig/*.pc; do
    sed -i -e "s|^prefix=/usr\$|prefix=$prefix/usr|" -e '/^Requires.private:/d' "$pc"
  done
  # Only the shared libraries this machine lacks go on the library path: the machine's own
  # (newer) libbsd, krb5 and the like stay in use.
  ldconfig -p | awk 'NR > 1 {print $1}' | sort -u >"$prefix/have"
  for so in "$lib"/*.so.* "$prefix"/lib/x86_64-linux-gnu/*.so.*; do
    [[ -e $so ]] || continue
    grep -qxF "$(basename "$so")" "$prefix/have" || ln -sf "$so" "$prefix/extra-lib/"
  done
  export LD_LIBRARY_PATH=$prefix/extra-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export PKG_CONFIG_PATH=$lib/pkgconfig
  command -v pkg-config >/dev/null || cmake_extra+=(-DPKG_CONFIG_EXECUTABLE="$prefix/usr/bin/pkgconf")
  cmake_extra+=(-DCMAKE_PREFIX_PATH="$prefix/usr")
  # Debian's libz.so points at Debian's runtime by absolute path: point it at this machine's.
  ln -sf "$(ldconfig -p | awk '$1 == "libz.so.1" {print $NF; exit}')" "$lib/libz.so"
  # Config files of Debian 12's packages predate CMake 4's policy floor.
  export CMAKE_POLICY_VERSION_MINIMUM=3.5
fi
[[ -d /usr/local/cuda/bin ]] && export PATH=/usr/local/cuda/bin:$PATH

declare -A result
running=()  # process groups of the stage and watchdog in progress
trap 'for group in "${running[@]}"; do kill -KILL -- -"$group" 2>/dev/null; done; exit 130' INT TERM

run_stage() {  # name timeout-seconds command...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS log="$out/$name.log" marker="$out/.$name.timed-out"
  : >"$log"
  rm -f "$marker"
  echo "=== $name ($(date +%T))"
  # Job control puts each background job in a process group of its own, so the watchdog can
  # stop a stage with everything it started (starlingctl up gives each daemon a group of its
  # own too, and stops them itself when it is stopped).
  set -m
  "$@" >>"$log" 2>&1 </dev/null &
  local pid=$!
  (sleep "$limit"
   touch "$marker"
   echo "gpu_check: stage $name passed its ${limit} s limit; stopping it" >>"$log"
   kill -TERM -- -"$pid"
   sleep 30
   kill -KILL -- -"$pid") >/dev/null 2>&1 </dev/null &
  local watchdog=$!
  running=("$pid" "$watchdog")
  wait "$pid"
  local rc=$?
  # A stopped stage's shell is gone at once; wait (within the watchdog's grace) for the rest of
  # its group, so that the next stage does not start beside it.
  while [[ -e $marker ]] && kill -0 -- -"$pid" 2>/dev/null; do sleep 1; done
  kill -KILL -- -"$watchdog" 2>/dev/null
  wait "$watchdog" 2>/dev/null
  running=()
  set +m
  if [[ -e $marker ]]; then
    result[$name]="TIMED OUT after $limit s ($log)"
    rm -f "$marker"
  elif ((rc == 0)); then
    result[$name]="ok ($((SECONDS - start)) s)"
  else
    result[$name]="FAILED, exit $rc ($((SECONDS - start)) s; $log)"
  fi
  tail -n 25 "$log"
}

stage_build() {
  local torch_dir
  torch_dir=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch || return 1
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"cxx11 abi", torch.compiled_with_cxx11_abi(), "devices", torch.cuda.device_count())'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  local generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$torch_dir" \
    "${cmake_extra[@]}" || return 1
  # -k 0: every compile error in one pass, not just the first.
  if command -v ninja >/dev/null; then
    cmake --build "$BUILD_DIR" -j "$JOBS" -- -k 0
  else
    cmake --build "$BUILD_DIR" -j "$JOBS" -- -k
  fi
}

stage_unit() {
  # Every test outside cluster_tests (its multi-process tests are the cluster stage), JOBS at a
  # time, then the CUDA tests of the Trainer again on their own, with their output.
  local rc=0
  (cd "$BUILD_DIR" && ctest --output-on-failure -j "$JOBS" -LE '^cluster$') || rc=1
  "$BUILD_DIR/tests/training_tests" --gtest_filter='CudaTrainer.*' || rc=1
  return $rc
}

stage_job() {
  local run_dir=$out/job-run
  rm -rf "$run_dir"
  "$BUILD_DIR/daemon/starlingctl" up --run-dir "$run_dir" --stop-grace 10 || return 1
  # Each node's log names the device its model was on: this check is about the GPU.
  grep -rho --include=starlingd.log 'parameters on [a-z]*:*[0-9]*' "$run_dir" | sort | uniq -c
  if grep -rq --include=starlingd.log 'parameters on cpu' "$run_dir"; then
    echo "gpu_check: a node trained on the CPU (device auto found no GPU)"
    return 1
  fi
}

stage_tta() {  # the settings of bench/run_time_to_accuracy.sh, on the GPU
  local rc=0
  "$BUILD_DIR/bench/train_throughput" --mode time-to-accuracy --device cuda --model mlp \
    --target 0.88 --lr 0.03 --momentum 0.9 --batch 32 --schedule cosine --epochs 5 \
    --eval-every 469 --eval-batch 1000 || rc=1
  "$BUILD_DIR/bench/train_throughput" --mode time-to-accuracy --device cuda --model cnn \
    --target 0.90 --lr 0.02 --momentum 0.9 --batch 32 --schedule cosine --epochs 5 \
    --eval-every 469 --eval-batch 1000 || rc=1
  return $rc
}

stage_bench() {  # training throughput, Starling against PyTorch on the same GPU
  DEVICE=cuda PYTHON=$(command -v "$PYTHON") BUILD_DIR=$BUILD_DIR ROUNDS=${ROUNDS:-2} \
    MEASURE_SECONDS=${MEASURE_SECONDS:-3} OUT="$out/training-cuda.jsonl" bench/run_training_bench.sh
}

stage_cluster() {
  # ctest runs the multi-process tests one at a time (RESOURCE_LOCK: on 2 cores two clusters
  # starve each other). A GPU machine has the cores for several: the binary runs them in
  # CLUSTER_SHARDS shards side by side, each shard's tests one after another.
  local shards=${CLUSTER_SHARDS:-4} rc=0 pids=() index
  for ((index = 0; index < shards; index++)); do
    GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$index "$BUILD_DIR/tests/cluster_tests" \
      --gtest_brief=1 >"$out/cluster-shard-$index.log" 2>&1 &
    pids+=($!)
  done
  for index in "${!pids[@]}"; do
    wait "${pids[$index]}" || { rc=1; echo "shard $index failed:"; tail -n 60 "$out/cluster-shard-$index.log"; }
  done
  grep -h '^\[  PASSED\|^\[  FAILED\|tests ran' "$out"/cluster-shard-*.log
  return $rc
}

for stage in $stages; do
  case $stage in
    build) run_stage build 600 stage_build ;;
    unit) run_stage unit 300 stage_unit ;;
    job) run_stage job 200 stage_job ;;
    tta) run_stage tta 200 stage_tta ;;
    bench) run_stage bench 300 stage_bench ;;
    cluster) run_stage cluster 400 stage_cluster ;;
    *) echo "gpu_check: unknown stage $stage" >&2; exit 2 ;;
  esac
  [[ $stage == build && ${result[build]} != ok* ]] && break
done

echo "=== summary"
status=0
for stage in $stages; do
  [[ -n ${result[$stage]:-} ]] || continue
  echo "$stage: ${result[$stage]}"
  [[ ${result[$stage]} == ok* ]] || status=1
done
exit $status
