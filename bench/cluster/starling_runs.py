"""Runs a Starling cluster (one starlingd per node, on loopback) and reads its metrics."""
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("STARLING_BUILD", os.path.join(ROOT, "build"))
STARLINGCTL = os.path.join(BUILD, "daemon", "starlingctl")


def free_ports(count):
    """`count` distinct free loopback ports below the kernel's ephemeral range (32768 and up):
    every node's ring-link listener binds port 0, so a port the kernel picked and released
    here could be handed to one node's listener before the node it was meant for starts."""
    chosen = set()
    rng = random.Random()
    for _ in range(1000 * count):
        if len(chosen) == count:
            break
        port = rng.randrange(20000, 32768)
        if port in chosen:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.add(port)
    if len(chosen) < count:
        raise RuntimeError(f"no {count} free loopback ports below 32768")
    return list(chosen)


def cluster_text(name, nodes, topology, training, sync, run_dir, transport="tcp", seed=1,
                 node_lines=None):
    lines = ['[cluster]', f'name = "{name}"', f'seed = {seed}', '', '[topology]', topology, '',
             '[training]', training, '', '[sync]', sync, '', '[run]', f'dir = "{run_dir}"']
    ports = free_ports(nodes)
    for i in range(nodes):
        lines += ['', '[[node]]', f'id = "n{i}"',
                  (f'endpoint = "tcp://127.0.0.1:{ports[i]}"' if transport == "tcp"
                   else f'endpoint = "ipc://{run_dir}/n{i}.data"'),
                  f'control = "ipc://{run_dir}/n{i}.sock"']
        if node_lines:
            lines.append(node_lines[i])
    return "\n".join(lines) + "\n"


def curve_keys(nodes, directory):
    """A CURVE key pair per node (starlingctl keygen): the [[node]] lines that list them."""
    lines = []
    for i in range(nodes):
        path = os.path.join(directory, f"n{i}.key")
        out = subprocess.run([STARLINGCTL, "keygen", path], capture_output=True, text=True,
                             check=True).stdout.strip()
        lines.append(f'{out}\nsecret_key_file = "{path}"')
    return lines


def run_cluster(name, nodes, topology, training, sync, keep=None, transport="tcp", seed=1,
                curve=False):
    """Runs the cluster to completion; returns per-node metrics (lists of JSON events).
    keep: a run directory to use and leave in place; without it the run uses a temporary one
    and removes it once the metrics are read (each holds checkpoints: hundreds of benchmark
    runs would fill /tmp), unless the run fails, when it is kept and named in the error.
    curve: every node gets a CURVE key pair (encrypted, authenticated connections)."""
    # Without `keep`, the run directory is "run" inside a private temporary directory: up puts
    # its `latest` link beside the run directory, and that link goes away with it too.
    scratch = None if keep else tempfile.mkdtemp(prefix=f"starling-bench-{name}-")
    run_dir = keep or os.path.join(scratch, "run")
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, "cluster.toml")
    node_lines = curve_keys(nodes, run_dir) if curve else None
    with open(path, "w") as f:
        f.write(cluster_text(name, nodes, topology, training, sync, run_dir, transport, seed,
                             node_lines))
    with open(os.path.join(run_dir, "up.log"), "w") as log:
        done = subprocess.run([STARLINGCTL, "up", path, "--run-dir", run_dir], stdout=log,
                              stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"starlingctl up exited with {done.returncode}; run directory kept: "
                           f"{run_dir}")
    metrics = []
    for i in range(nodes):
        with open(os.path.join(run_dir, f"n{i}", "metrics.jsonl")) as f:
            metrics.append([json.loads(line) for line in f if line.strip()])
    if keep is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return metrics


def summaries(metrics):
    return [next(e for e in reversed(m) if e["event"] == "summary") for m in metrics]


def throughput(metrics):
    """Cluster samples/s over the training loops: all samples / the slowest node's time. The
    time includes what the sync mode does after the last step (a final allreduce, final
    rounds), as PyTorch's loop includes its last averaging."""
    s = summaries(metrics)
    return (sum(x["trained_samples"] for x in s)
            / max(x["train_seconds"] + x.get("finish_seconds", 0.0) for x in s))


def eval_curve(metrics):
    """Per evaluation point (same steps on every node): training seconds (evaluations taken
    out, the slowest node's clock) and the nodes' mean test accuracy."""
    curves = []
    for m in metrics:
        started = next(e["time"] for e in m if e["event"] == "training")
        spent = 0.0
        points = []
        for e in m:
            if e["event"] == "eval":
                began = e["time"] - e["seconds"]
                points.append((e["step"], began - started - spent, e["accuracy"]))
                spent += e["seconds"]
        curves.append(points)
    steps = sorted(set(p[0] for p in curves[0]).intersection(*[{p[0] for p in c} for c in curves]))
    out = []
    for step in steps:
        at = [next(p for p in c if p[0] == step) for c in curves]
        out.append({"step": step, "train_seconds": max(p[1] for p in at),
                    "accuracy": sum(p[2] for p in at) / len(at)})
    return out
