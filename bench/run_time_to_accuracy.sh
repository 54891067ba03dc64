#!/usr/bin/env bash
# Time to accuracy on Fashion-MNIST, one node, one thread: mlp to 88% test accuracy, cnn to 90%.
# Evaluates on the whole test set every quarter epoch (469 steps of batch 32; test batches of
# 1000 for the mlp, 100 for the cnn, which evaluates twice as fast so on a CPU); reports the
# epochs and the training wall time until the first evaluation at or above the target, and the
# wall time with the evaluations included. Runs are deterministic (same seed, one thread), so
# repeats differ only in time.
#
# Hyperparameters (batch 32, momentum 0.9, cosine decay over 5 epochs, no weight decay):
#   mlp  lr 0.03      cnn  lr 0.02
# Environment: REPEATS (2), BUILD_DIR (build), OUT (bench/out/tta-<time>.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-2}
BUILD_DIR=${BUILD_DIR:-build}
STARLING="$BUILD_DIR/bench/train_throughput"
mkdir -p bench/out
OUT=${OUT:-bench/out/tta-$(date +%Y%m%d-%H%M%S).jsonl}
[[ -x "$STARLING" ]] || { echo "run_time_to_accuracy: build first (./scripts/build.sh)" >&2; exit 1; }

echo "machine: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
run() {  # model target lr eval_batch
  for ((r = 1; r <= REPEATS; r++)); do
    "$STARLING" --mode time-to-accuracy --model "$1" --target "$2" --lr "$3" --momentum 0.9 \
      --batch 32 --schedule cosine --epochs 5 --threads 1 --eval-every 469 --eval-batch "$4" \
      2>/dev/null >> "$OUT"
    tail -n1 "$OUT" | /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print("  %-4s target %.2f: %s at epoch %.2f (accuracy %.4f), training %.1f s, with evaluations %.1f s, setup %.1f s"
      % (d["model"], float(sys.argv[1]), "reached" if d["reached"] else "NOT reached", d["epochs"],
         d.get("accuracy", max(c["accuracy"] for c in d["curve"])), d["train_seconds"],
         d["wall_seconds"], d["setup_seconds"]))' "$2"
  done
}
run mlp 0.88 0.03 1000
run cnn 0.90 0.02 100  # the cnn evaluates 2x faster in batches of 100 than of 1000 on this CPU
echo "results: $OUT"
