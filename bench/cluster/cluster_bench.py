"""Issue 4's cluster benchmark: Starling's gossip against Starling's local mode, PyTorch's
PeriodicModelAverager and PyTorch's DistributedDataParallel, all measured in the same run on
this machine. Fashion-MNIST, mlp, 4 nodes/ranks, batch 32, lr 0.05, momentum 0.9, one
intra-op thread per process, loopback TCP.

  throughput: cluster samples/s over the training loops (all samples / the slowest node's
              loop time; evaluations excluded), for
                starling local, starling gossip every 8 steps (ring: tcp, ipc, staleness 0;
                one-peer exponential graph: f32 and f16 on the wire, each with staleness 1
                and 0),
                pytorch PMA period 8,
              plus the final test accuracy after the same number of epochs (cosine lr decay
              to 0 on both sides);
  time to 86%: training seconds until the nodes' mean test accuracy first reaches 86%,
              evaluated every eval-every steps (evaluations excluded), starling gossip vs
              pytorch DDP.

Rounds interleave the systems so machine noise hits them alike; the summary reports the median
and the range of each ratio. Raw results go to bench/results/cluster-<time>.jsonl.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import starling_runs  # noqa: E402

TRAINING = ('model = "mlp"\nbatch_size = 32\nlr = 0.05\nmomentum = 0.9\nthreads = 1\n'
            'lr_schedule = "{schedule}"\nepochs = {epochs}\neval_every = {eval_every}')
# On a machine with a GPU, device "auto" would put Starling's nodes on it while the PyTorch
# peers train on the CPU: STARLING_BENCH_DEVICE=cpu keeps the comparison on the CPU. The
# PyTorch peers run under STARLING_BENCH_PYTHON (default: Debian's python3 with python3-torch).
if os.environ.get("STARLING_BENCH_DEVICE"):
    TRAINING += f'\ndevice = "{os.environ["STARLING_BENCH_DEVICE"]}"'
PYTHON = os.environ.get("STARLING_BENCH_PYTHON", "/usr/bin/python3")


def pytorch(mode, epochs, eval_every=0, stop_at=0.0, schedule="cosine", seed=1):
    with tempfile.TemporaryDirectory(prefix=f"starling-bench-pytorch-{mode}-") as out:
        cmd = [PYTHON, os.path.join(HERE, "pytorch_peers.py"), "--mode", mode,
               "--port", str(starling_runs.free_ports(1)[0]), "--epochs", str(epochs),
               "--eval-every", str(eval_every), "--stop-at", str(stop_at), "--schedule", schedule,
               "--seed", str(seed), "--out", out]
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        ranks = []
        for name in sorted(os.listdir(out)):
            with open(os.path.join(out, name)) as f:
                ranks.append(json.load(f))
    return ranks


def pytorch_throughput(ranks):
    return sum(r["samples"] for r in ranks) / max(r["train_seconds"] for r in ranks)


STEPS_PER_EPOCH = -(-60000 // 4 // 32)  # a node's steps per epoch (its quarter, batch 32)


def starling(mode, epochs, eval_every=0, sync_extra="", transport="tcp", schedule="cosine",
             topology="ring", seed=1, curve=False, period=8, period_schedule=()):
    """period_schedule: (fraction of the run, period) phases before `period` applies."""
    sync = f'mode = "{mode}"\nperiod = {period}' + sync_extra
    if period_schedule:
        total = math.ceil(epochs * STEPS_PER_EPOCH - 1e-9)  # as the trainer counts
        phases = ", ".join(f"{{ until_step = {round(f * total)}, period = {p} }}"
                           for f, p in period_schedule)
        sync += f"\nperiod_schedule = [{phases}]"
    training = TRAINING.format(epochs=epochs, eval_every=eval_every or 100000, schedule=schedule)
    return starling_runs.run_cluster(f"bench-{mode}", 4, f'kind = "{topology}"', training, sync,
                                     transport=transport, seed=seed, curve=curve)


# The one-peer exponential graph (one message out and one in per round: half the ring's bytes)
# and binary16 parameters on the wire (half again).
EXPONENTIAL = "one-peer-exponential"
F16 = '\nwire_precision = "f16"'
INT8 = '\nwire_precision = "int8"'
VARIANTS = {  # name -> starling() keyword arguments, gossip every 8 steps
    "starling_gossip": {},
    "starling_gossip_ipc": {"transport": "ipc"},
    "starling_gossip_curve": {"curve": True},  # CURVE-encrypted connections (README "Security")
    "starling_gossip_staleness0": {"sync_extra": "\nstaleness = 0"},
    "starling_gossip_exp": {"topology": EXPONENTIAL},
    "starling_gossip_exp_staleness0": {"topology": EXPONENTIAL, "sync_extra": "\nstaleness = 0"},
    "starling_gossip_exp_f16": {"topology": EXPONENTIAL, "sync_extra": F16},
    "starling_gossip_exp_int8": {"topology": EXPONENTIAL, "sync_extra": INT8},
    # ipc:// endpoints: payloads over Unix-domain socket links (and through ZeroMQ, as all
    # ipc:// clusters did before those links).
    "starling_gossip_exp_f16_ipc": {"topology": EXPONENTIAL, "sync_extra": F16, "transport": "ipc"},
    "starling_gossip_exp_f16_ipc_zeromq": {"topology": EXPONENTIAL, "transport": "ipc",
                                           "sync_extra": F16 + '\ncollective_transport = "zeromq"'},
    # Payloads through ZeroMQ rather than over ring links (what every node did before gossip
    # used the links): bench/RESULTS-cluster.md, "Gossip payloads over ring links".
    "starling_gossip_exp_f16_zeromq": {"topology": EXPONENTIAL,
                                       "sync_extra": F16 + '\ncollective_transport = "zeromq"'},
    "starling_gossip_exp_f16_staleness0": {"topology": EXPONENTIAL,
                                           "sync_extra": F16 + "\nstaleness = 0"},
    # Every 4 steps with binary16: the bytes of float32 every 8. Not in the default set.
    "starling_gossip_exp_f16_period4": {"topology": EXPONENTIAL, "sync_extra": F16, "period": 4},
    "starling_gossip_exp_f16_staleness0_period4": {"topology": EXPONENTIAL, "period": 4,
                                                   "sync_extra": F16 + "\nstaleness = 0"},
    # Every node mixes with all three others (weights 1/4: the exact average, as PMA), in
    # binary16; and the ring in binary16 (the bytes of exp f32). Not in the default set.
    "starling_gossip_complete_f16_staleness0": {"topology": "complete",
                                                "sync_extra": F16 + "\nstaleness = 0"},
    "starling_gossip_complete_f16": {"topology": "complete", "sync_extra": F16},
    "starling_gossip_ring_f16_staleness0": {"sync_extra": F16 + "\nstaleness = 0"},
    # A period schedule that follows the cosine learning rate (each quarter's period about
    # 4 / its mean lr factor; the rounds of a constant 8): bench/RESULTS-cluster.md, "Period
    # schedules". Not in the default set.
    "starling_gossip_exp_f16_staleness0_lr": {
        "topology": EXPONENTIAL, "sync_extra": F16 + "\nstaleness = 0", "period": 64,
        "period_schedule": [(0.25, 4), (0.5, 6), (0.75, 12)]},
    # Every 4 steps for the first half of the run, then every 16 or 32 (more rounds than a
    # constant 8: 146 and 131 against 117). Not in the default set.
    "starling_gossip_exp_f16_staleness0_4to16": {
        "topology": EXPONENTIAL, "sync_extra": F16 + "\nstaleness = 0", "period": 16,
        "period_schedule": [(0.5, 4)]},
    "starling_gossip_exp_f16_staleness0_4to32": {
        "topology": EXPONENTIAL, "sync_extra": F16 + "\nstaleness = 0", "period": 32,
        "period_schedule": [(0.5, 4)]},
    # Every 4 steps for the first half, every 8 in the third quarter, every 32 in the last
    # (152 rounds): the best of four schedules screened on seeds 1 to 12 (bench/RESULTS-cluster.md,
    # "A schedule by quarters"). Not in the default set.
    "starling_gossip_exp_f16_staleness0_quarters_4_4_8_32": {
        "topology": EXPONENTIAL, "sync_extra": F16 + "\nstaleness = 0", "period": 32,
        "period_schedule": [(0.25, 4), (0.5, 4), (0.75, 8)]},
    # The same with 8-bit codes on the wire.
    "starling_gossip_exp_int8_staleness0_quarters_4_4_8_32": {
        "topology": EXPONENTIAL, "sync_extra": INT8 + "\nstaleness = 0", "period": 32,
        "period_schedule": [(0.25, 4), (0.5, 4), (0.75, 8)]},
    # The same through ZeroMQ rather than over ring links.
    "starling_gossip_exp_f16_staleness0_quarters_4_4_8_32_zeromq": {
        "topology": EXPONENTIAL,
        "sync_extra": F16 + '\nstaleness = 0\ncollective_transport = "zeromq"', "period": 32,
        "period_schedule": [(0.25, 4), (0.5, 4), (0.75, 8)]},
    "starling_gossip_exp_f16_lr": {
        "topology": EXPONENTIAL, "sync_extra": F16, "period": 64,
        "period_schedule": [(0.25, 4), (0.5, 6), (0.75, 12)]},
    # Not gossip: Starling's own periodic model averaging (an allreduce of the parameters
    # every 8 steps, what PMA does). It tells a gap between Starling and PMA that comes from
    # the trainers apart from one that comes from gossip. Not in the default set.
    "starling_allreduce_parameters": {"mode": "allreduce",
                                      "sync_extra": '\nallreduce = "parameters"'},
}
DEFAULT_VARIANTS = [v for v in VARIANTS
                    if not v.startswith("starling_allreduce") and not v.endswith("_period4")
                    and not v.endswith("_lr") and "_4to" not in v and "_quarters" not in v
                    and "complete" not in v and "ring_f16" not in v and not v.endswith("_zeromq")]


def first_reaching(curve, target):
    for point in curve:
        if point["accuracy"] >= target:
            return point
    return None


def time_to_accuracy(args, seed):
    """Training seconds until the nodes' mean test accuracy first reaches args.target: Starling
    gossip (ring) against PyTorch DDP, constant lr (a schedule would depend on the budget)."""
    gossip = starling("gossip", args.max_epochs, args.eval_every, schedule="constant", seed=seed)
    hit = first_reaching(starling_runs.eval_curve(gossip), args.target)
    ddp = pytorch("ddp", args.max_epochs, args.eval_every, args.target, schedule="constant",
                  seed=seed)
    ddp_hit = first_reaching(ddp[0]["evals"], args.target)
    return {"gossip_tta_seconds": hit["train_seconds"] if hit else None,
            "gossip_tta_step": hit["step"] if hit else None,
            "ddp_tta_seconds": ddp_hit["train_seconds"] if ddp_hit else None,
            "ddp_tta_step": ddp_hit["step"] if ddp_hit else None}


def points_spread(values):
    """Median [range]; with 3 or more values also the mean and its standard error, which is
    what says whether a difference of a few tenths is more than seed-to-seed noise."""
    text = f"{statistics.median(values):+.2f} [{min(values):+.2f}..{max(values):+.2f}] points"
    if len(values) >= 3:
        error = statistics.stdev(values) / len(values) ** 0.5
        text += f", mean {statistics.mean(values):+.2f} +- {error:.2f} (s.e.)"
    return text


def spread(values):
    return f"{statistics.median(values):.2f}x [{min(values):.2f}..{max(values):.2f}]"


def lag_text(rows, key, late_key):
    lags = [x[key] for x in rows if key in x]
    late = [x[late_key] for x in rows if late_key in x]
    if not lags:
        return ""
    tail = f", {100 * statistics.median(late):.0f}% a whole period late" if late else ""
    return f"(applied {statistics.median(lags):.1f} steps after the snapshot{tail})"


def row_key(variant, field):
    """The row's key for a variant's field: "starling_gossip" -> "gossip_accuracy"."""
    return variant.replace("starling_", "") + "_" + field


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--target", type=float, default=0.86)
    p.add_argument("--eval-every", type=int, default=59)  # about an eighth of an epoch per node
    p.add_argument("--max-epochs", type=float, default=6.0)
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help="comma-separated Starling variants to run (default: the gossip ones)")
    p.add_argument("--no-time-to-accuracy", action="store_true",
                   help="skip the time-to-accuracy runs (for many-seed accuracy comparisons)")
    p.add_argument("--first-seed", type=int, default=1, help="round r uses seed first-seed + r")
    args = p.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    os.makedirs(os.path.join(HERE, "..", "results"), exist_ok=True)
    out_path = os.path.join(HERE, "..", "results", time.strftime("cluster-%Y%m%d-%H%M%S.jsonl"))
    rows = []
    with open(out_path, "w") as out:
        for r in range(args.rounds):
            mean_accuracy = lambda m: statistics.mean(s["accuracy"] for s in starling_runs.summaries(m))
            # Round r runs every system with seed r + 1 (initial model, data order): accuracy is
            # compared over seeds, not on one draw.
            seed = args.first_seed + r
            local = starling("local", args.epochs, seed=seed)
            row = {"round": r, "seed": seed, "starling_local": starling_runs.throughput(local)}
            for name in variants:
                options = dict(VARIANTS[name])
                metrics = starling(options.pop("mode", "gossip"), args.epochs, seed=seed,
                                   **options)
                row[name] = starling_runs.throughput(metrics)
                row[row_key(name, "accuracy")] = mean_accuracy(metrics)
                lags = [s["sync"]["mean_apply_lag_steps"] for s in starling_runs.summaries(metrics)
                        if "mean_apply_lag_steps" in s.get("sync", {})]
                if lags:  # steps from a round's snapshot to its apply, mean over nodes
                    row[row_key(name, "apply_lag")] = statistics.mean(lags)
                late = [s["sync"]["rounds_a_period_late"] / s["sync"]["rounds"]
                        for s in starling_runs.summaries(metrics)
                        if s.get("sync", {}).get("rounds") and "rounds_a_period_late" in s["sync"]]
                if late:  # the tail that costs the accuracy: share of rounds a whole period late
                    row[row_key(name, "period_late")] = statistics.mean(late)
            pma = pytorch("pma", args.epochs, seed=seed)
            row["pytorch_pma"] = pytorch_throughput(pma)
            row["pma_accuracy"] = statistics.mean(x["accuracy"] for x in pma)
            if not args.no_time_to_accuracy:
                row.update(time_to_accuracy(args, seed))
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), flush=True)

    def ratio(a, b):
        return [x[a] / x[b] for x in rows if x[a] and x[b]]

    print()
    print(f"{args.rounds} rounds, {args.epochs} epochs per node, 4 nodes, gossip every 8 steps")
    def median_of(key):
        return statistics.median(x[key] for x in rows)

    print("cluster samples/s (median): starling local", f"{median_of('starling_local'):.0f},",
          "pytorch PMA", f"{median_of('pytorch_pma'):.0f}")
    for name in variants:
        r = ratio(name, "starling_local")
        print(f"{name}: {median_of(name):.0f} samples/s;".ljust(50), "/ local", spread(r),
              f"(overhead {100 * (1 - statistics.median(r)):.1f}%);",
              "/ PyTorch PMA", spread(ratio(name, "pytorch_pma")) + ";",
              f"accuracy {100 * median_of(row_key(name, 'accuracy')):.2f}%",
              lag_text(rows, row_key(name, "apply_lag"), row_key(name, "period_late")),
              "(minus PMA's, same seed:",
              points_spread([100 * (x[row_key(name, 'accuracy')] - x['pma_accuracy'])
                             for x in rows]) + ")")
    print(f"pytorch PMA accuracy {100 * median_of('pma_accuracy'):.2f}%")
    tta = [] if args.no_time_to_accuracy else ratio("gossip_tta_seconds", "ddp_tta_seconds")
    if tta:
        print(f"time to {100 * args.target:.0f}%: starling gossip / pytorch DDP", spread(tta),
              f"(starling {statistics.median(x['gossip_tta_seconds'] for x in rows if x['gossip_tta_seconds']):.1f} s,"
              f" DDP {statistics.median(x['ddp_tta_seconds'] for x in rows if x['ddp_tta_seconds']):.1f} s)")
    print("raw:", os.path.relpath(out_path))


if __name__ == "__main__":
    main()
