"""Screens gossip period schedules for accuracy on the cluster, without re-running PyTorch.

Blocking gossip (staleness 0) is deterministic on this machine: a seed gives the same final
accuracy to the last digit in every run, and so does PyTorch's PeriodicModelAverager. So a
schedule's accuracy against PMA can be measured by running Starling alone, seed by seed, and
pairing each result with PMA's accuracy for the same seed from an earlier cluster_bench.py run
(`--pma-from`). That costs a few seconds a seed instead of half a minute, which makes it
practical to screen several schedules. The throughput half of the comparison is not measured
here: run the chosen schedule through cluster_bench.py, which times PMA in the same run, and
on seeds the screen did not choose from.

Each schedule is NAME=PHASES, where PHASES is comma-separated FRACTION:PERIOD pairs (the period
until that fraction of the run) and a final PERIOD, for instance
    4_4_8_32=0.25:4,0.5:4,0.75:8,32
The run is cluster_bench.py's: 4 nodes, mlp, Fashion-MNIST, 2 epochs per node, batch 32,
one-peer exponential graph, binary16 on the wire, staleness 0.

Raw rows go to bench/results/schedule-screen-<time>.jsonl.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cluster_bench  # noqa: E402
import starling_runs  # noqa: E402


def parse_schedule(text):
    """'NAME=F:P,F:P,...,P' -> (name, [(fraction, period), ...], final period)."""
    name, sep, body = text.partition("=")
    if not sep or not name or not body:
        raise ValueError(f"{text!r}: expected NAME=FRACTION:PERIOD,...,PERIOD")
    parts = body.split(",")
    phases = []
    for part in parts[:-1]:
        fraction, colon, period = part.partition(":")
        if not colon:
            raise ValueError(f"{text!r}: phase {part!r} is not FRACTION:PERIOD")
        phases.append((float(fraction), int(period)))
    fractions = [f for f, _ in phases]
    if any(not 0 < f < 1 for f in fractions) or fractions != sorted(set(fractions)):
        raise ValueError(f"{text!r}: fractions must grow and lie strictly between 0 and 1")
    final = int(parts[-1])
    if final < 1 or any(p < 1 for _, p in phases):
        raise ValueError(f"{text!r}: periods must be at least 1")
    return name, phases, final


def parse_seeds(text):
    first, dash, last = text.partition("-")
    return list(range(int(first), int(last) + 1)) if dash else [int(s) for s in text.split(",")]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("schedules", nargs="+", help="NAME=FRACTION:PERIOD,...,PERIOD (see above)")
    p.add_argument("--pma-from", required=True,
                   help="a cluster_bench.py results file with pma_accuracy for every seed")
    p.add_argument("--seeds", default="1-12", help="FIRST-LAST or a comma-separated list")
    args = p.parse_args()
    try:
        schedules = [parse_schedule(s) for s in args.schedules]
    except ValueError as e:
        p.error(str(e))
    seeds = parse_seeds(args.seeds)
    with open(args.pma_from) as f:
        pma = {row["seed"]: row["pma_accuracy"] for row in map(json.loads, f)
               if "pma_accuracy" in row}
    missing = [s for s in seeds if s not in pma]
    if missing:
        p.error(f"{args.pma_from} has no pma_accuracy for seed(s) {missing}")

    out_path = os.path.join(HERE, "..", "results",
                            time.strftime("schedule-screen-%Y%m%d-%H%M%S.jsonl"))
    points = {name: [] for name, _, _ in schedules}
    with open(out_path, "w") as out:
        for seed in seeds:  # seeds outside, schedules inside: machine drift hits all alike
            for name, phases, final in schedules:
                metrics = cluster_bench.starling(
                    "gossip", 2.0, seed=seed, topology=cluster_bench.EXPONENTIAL,
                    sync_extra=cluster_bench.F16 + "\nstaleness = 0", period=final,
                    period_schedule=phases)
                summaries = starling_runs.summaries(metrics)
                accuracy = statistics.mean(s["accuracy"] for s in summaries)
                row = {"schedule": name, "phases": phases, "final_period": final, "seed": seed,
                       "accuracy": accuracy, "pma_accuracy": pma[seed],
                       "minus_pma_points": 100 * (accuracy - pma[seed]),
                       "rounds": summaries[0]["sync"]["rounds"],
                       "samples_per_s": starling_runs.throughput(metrics)}
                points[name].append(row["minus_pma_points"])
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(json.dumps(row), flush=True)
    print(f"\nraw rows: {os.path.relpath(out_path)}")
    print("schedule: minus PMA in points, mean +- s.e. over seeds; seeds at or above PMA")
    for name, diffs in points.items():
        se = (f" +- {statistics.stdev(diffs) / len(diffs) ** 0.5:.3f}" if len(diffs) > 1
              else " (one seed: no s.e.)")
        print(f"  {name}: {statistics.mean(diffs):+.3f}{se}; "
              f"{sum(d >= 0 for d in diffs)} of {len(diffs)}")


if __name__ == "__main__":
    main()
