#!/usr/bin/env bash
# Training throughput, Starling against PyTorch, measured in the same run.
#
# For each round and model it runs, back to back and in a rotating order:
#   starling           build/bench/train_throughput (the Trainer the daemon uses)
#   pytorch-idiomatic  bench/pytorch_train.py --loop idiomatic (DataLoader, nn.Sequential, optim.SGD)
#   pytorch-tuned      bench/pytorch_train.py --loop tuned (randperm + index_select batches)
# with the same model, batch, lr, momentum and thread count (OpenBLAS's pool included), on the
# Fashion-MNIST training set. Each round gives a ratio per peer; the summary prints the median
# and the spread (min..max) over rounds, by wall time and by process CPU time.
#
# Environment: ROUNDS (3), MEASURE_SECONDS per measurement (5), MODELS ("mlp cnn"), BATCH (32),
# LR (0.05), MOMENTUM (0.9), THREADS (1), BUILD_DIR (build), OUT (bench/out/training-<time>.jsonl),
# DEVICE (cpu; cuda on a GPU machine, for both sides), PYTHON (/usr/bin/python3: Debian's, with
# python3-torch; on a GPU machine the python3 whose PyTorch Starling was built against).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${MEASURE_SECONDS:-5}
MODELS=${MODELS:-"mlp cnn"}
BATCH=${BATCH:-32}
LR=${LR:-0.05}
MOMENTUM=${MOMENTUM:-0.9}
THREADS=${THREADS:-1}
BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}   # Debian's interpreter, which has python3-torch
DEVICE=${DEVICE:-cpu}
STARLING="$BUILD_DIR/bench/train_throughput"
mkdir -p bench/out
OUT=${OUT:-bench/out/training-$(date +%Y%m%d-%H%M%S).jsonl}

if [[ ! -x "$STARLING" ]]; then
  echo "run_training_bench: $STARLING is missing; build first (./scripts/build.sh)" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "run_training_bench: $PYTHON cannot import torch; run bench/setup.sh" >&2
  exit 1
fi

common=(--model MODEL --batch "$BATCH" --lr "$LR" --momentum "$MOMENTUM" --threads "$THREADS"
        --seconds "$SECONDS_PER_RUN" --device "$DEVICE")
run_one() {  # impl model round
  local impl=$1 model=$2 round=$3 args=("${common[@]/MODEL/$2}") line
  case $impl in
    starling) line=$(OPENBLAS_NUM_THREADS=$THREADS "$STARLING" "${args[@]}") ;;
    pytorch-idiomatic) line=$("$PYTHON" bench/pytorch_train.py --loop idiomatic "${args[@]}") ;;
    pytorch-tuned) line=$("$PYTHON" bench/pytorch_train.py --loop tuned "${args[@]}") ;;
  esac
  echo "$line" | "$PYTHON" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["round"]=int(sys.argv[1]); print(json.dumps(d))' "$round" >> "$OUT"
  echo "  round $round  $model  $(printf '%-18s' "$impl") $(echo "$line" | "$PYTHON" -c 'import json,sys; d=json.loads(sys.stdin.read()); print("%9.0f samples/s  (%9.0f per CPU second)" % (d["samples_per_s"], d["samples_per_cpu_s"]))')"
}

echo "machine: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "torch: $("$PYTHON" -c 'import torch; print(torch.__version__)'); device $DEVICE; batch $BATCH, lr $LR, momentum $MOMENTUM, threads $THREADS, ${SECONDS_PER_RUN}s per measurement"
impls=(starling pytorch-idiomatic pytorch-tuned)
for ((round = 1; round <= ROUNDS; round++)); do
  for model in $MODELS; do
    # Rotate the order so no implementation always runs first (or last) in a round.
    for ((i = 0; i < 3; i++)); do
      run_one "${impls[$(((i + round) % 3))]}" "$model" "$round"
    done
  done
done

"$PYTHON" - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print()
print("Starling / PyTorch samples/s, median [min..max] over %d rounds (%s)" %
      (len({r["round"] for r in rows}), sys.argv[1]))
for model in sorted({r["model"] for r in rows}, key=["logreg", "mlp", "cnn"].index):
    by = {}
    for r in rows:
        if r["model"] == model:
            by.setdefault(r["round"], {})[r["impl"]] = r
    for peer in ("pytorch-idiomatic", "pytorch-tuned"):
        for key, label in (("samples_per_s", "wall"), ("samples_per_cpu_s", "cpu")):
            ratios = [v["starling"][key] / v[peer][key] for v in by.values()
                      if "starling" in v and peer in v]
            print("  %-4s vs %-18s %-4s %5.2fx  [%.2f..%.2f]" %
                  (model, peer, label, statistics.median(ratios), min(ratios), max(ratios)))
    s = [v["starling"]["samples_per_s"] for v in by.values()]
    print("  %-4s starling samples/s median %.0f [%.0f..%.0f]" % (model, statistics.median(s), min(s), max(s)))
PY
