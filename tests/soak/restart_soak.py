#!/usr/bin/env python3
"""Restart soak: for each sync mode, a 4-node cluster on loopback trains while random nodes are
SIGKILLed and restarted from their checkpoints (or, with --stall-share, stalled by SIGSTOP and
resumed) every 2-5 s for --chaos-seconds; then every node
must finish on its own (exit 0) within --deadline seconds, and where the mode ends with one
model (allreduce modes, final_allreduce) every node must score the same. Training runs well
past the chaos: a node restarted after the others have finished has nobody to rejoin and
rightly ends alone with its own model.

Not part of ctest (it runs for minutes and its timing is the point). It found four bugs that
the deterministic tests now cover: replicas of allreduce mode that stayed apart after a
rejoin, gossip nodes that rejoined the round but not the step and crawled at the end,
dynamic-averaging members held for minutes by a killed driver's balancing, and survivors of a
member killed in the final allreduce that each kept their own model.

    tests/soak/restart_soak.py [--modes gossip,allreduce,...] [--seed N] [--stall-share 0.5]
Exits 1 if any mode fails. Needs ./build (scripts/build.sh)."""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "cluster"))
import starling_runs  # noqa: E402

STARLINGD = os.path.join(starling_runs.BUILD, "daemon", "starlingd")
MODES = {
    # name: (sync section, whether every node must end with the same model)
    "gossip": ('mode = "gossip"\nperiod = 8', False),
    "gossip_s0_final": ('mode = "gossip"\nperiod = 8\nstaleness = 0\nfinal_allreduce = true', True),
    # 8-bit payloads (wire_precision = "int8"): restarts rejoin with them too.
    "gossip_int8": ('mode = "gossip"\nperiod = 8\nwire_precision = "int8"', False),
    "allreduce": ('mode = "allreduce"', True),
    "allreduce_params": ('mode = "allreduce"\nallreduce = "parameters"\nperiod = 4\n'
                         'final_allreduce = true', True),
    "dynamic": ('mode = "dynamic"\nperiod = 8\ndelta_mode = "relative"\ndelta = 0.003\n'
                'final_allreduce = true', True),
}
# 40 epochs: about 55 s here, well past the 25 s of chaos (20 epochs, about 27 s, were not:
# a node killed near the end came back after the others had finished and ended alone).
TRAINING = ('model = "mlp"\npartition = "iid"\nbatch_size = 32\nlr = 0.05\nmomentum = 0.9\n'
            'epochs = 40\neval_every = 400\ncheckpoint_every = 50')


def read_metrics(path):
    """(events, fragments): the JSON lines of a metrics.jsonl, and how many lines did not parse.
    A node killed in the middle of a line's write(2) leaves a fragment, which its successor
    ends with a newline (README, "Files"): readers skip it, as starlingctl does."""
    events, fragments = [], 0
    with open(path, errors="replace") as f:  # a fragment may end inside a UTF-8 sequence
        for line in filter(str.strip, f):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                fragments += 1
    return events, fragments


def soak(name, rng, chaos_seconds, deadline, stall_share):
    sync, one_model = MODES[name]
    run_dir = tempfile.mkdtemp(prefix=f"starling-soak-{name}-")
    path = os.path.join(run_dir, "cluster.toml")
    with open(path, "w") as f:
        f.write(starling_runs.cluster_text(name, 4, 'kind = "ring"', TRAINING, sync, run_dir))

    def start(i):
        log = open(os.path.join(run_dir, f"n{i}.log"), "a")
        return subprocess.Popen([STARLINGD, "--config", path, "--node", f"n{i}", "--run-dir", run_dir],
                                stdout=log, stderr=log)

    nodes = {i: start(i) for i in range(4)}
    began = time.time()
    kills = stalls = 0
    kills_of = {i: 0 for i in range(4)}
    while time.time() - began < chaos_seconds:
        time.sleep(rng.uniform(2, 5))
        i = rng.randrange(4)
        if nodes[i].poll() is not None:
            continue
        if rng.random() < stall_share:
            # A stall (SIGSTOP): the node's peers see it suspect or dead, then it speaks again
            # with its old state, rounds behind them.
            nodes[i].send_signal(signal.SIGSTOP)
            stalls += 1
            time.sleep(rng.uniform(0.5, 4.0))
            nodes[i].send_signal(signal.SIGCONT)
        else:
            nodes[i].send_signal(signal.SIGKILL)
            nodes[i].wait()
            kills += 1
            kills_of[i] += 1
            time.sleep(rng.uniform(0.2, 2.0))
            nodes[i] = start(i)
    end_by = time.time() + deadline
    exits = {}
    for i, p in nodes.items():
        try:
            exits[i] = p.wait(timeout=max(1, end_by - time.time()))
        except subprocess.TimeoutExpired:
            exits[i] = "did not finish"
            p.kill()
    accuracies = []
    fragments_ok = True
    for i in range(4):
        try:
            events, fragments = read_metrics(os.path.join(run_dir, f"n{i}", "metrics.jsonl"))
        except OSError:
            accuracies.append(None)
            continue
        summaries = [e for e in events if e.get("event") == "summary"]
        accuracies.append(summaries[-1]["accuracy"] if summaries else None)
        if fragments > kills_of[i]:  # a kill cuts at most the one line being written
            print(f"  n{i}: {fragments} unreadable metrics lines after {kills_of[i]} kills")
            fragments_ok = False
    ok = fragments_ok and all(code == 0 for code in exits.values())
    if one_model:
        ok = ok and len(set(accuracies)) == 1
    print(f"{name:18} {'ok' if ok else 'FAILED':7} kills {kills}  stalls {stalls}  exits {exits}  accuracies {accuracies}  "
          f"{time.time() - began:.0f} s  {run_dir if not ok else ''}", flush=True)
    if ok:  # a failed run's directory (logs, metrics, checkpoints) is kept for its post-mortem
        shutil.rmtree(run_dir, ignore_errors=True)
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--chaos-seconds", type=float, default=25)
    p.add_argument("--deadline", type=float, default=240, help="seconds to finish after the chaos")
    p.add_argument("--stall-share", type=float, default=0.0,
                   help="share of the faults that are stalls (SIGSTOP for 0.5-4 s, then SIGCONT) "
                        "rather than SIGKILL and restart")
    args = p.parse_args()
    rng = random.Random(args.seed)
    results = [soak(m, rng, args.chaos_seconds, args.deadline, args.stall_share)
               for m in args.modes.split(",")]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
