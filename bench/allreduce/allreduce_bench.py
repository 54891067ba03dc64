"""Issue 5's benchmark, measured in one run on this machine:

  1. ring allreduce bandwidth: Starling (allreduce_rank: chunks over its TCP ring links,
     through ZeroMQ over tcp:// and ipc://, and over Unix-domain socket ring links between
     ipc:// nodes) against
     torch.distributed's allreduce over Gloo (tcp), world sizes 2, 4 and 8, buffers of 1, 16
     and 100 MiB of float32; algorithm bandwidth = buffer bytes / median time of one allreduce;
  2. the memory-copy bound: each byte a member sends crosses the kernel twice (into the socket,
     out to the receiver), and the members send 2(N-1) buffers' worth in all, so on one machine
     an allreduce moves at least 4(N-1)B bytes through memcpy; with the machine's aggregate
     copy bandwidth M, algbw <= M / (4(N-1)). We report the fraction of that bound reached;
  3. training: Fashion-MNIST mlp, 4 nodes, Starling's allreduce mode (gradients every step)
     against PyTorch DistributedDataParallel, same batch (32 per node), lr, schedule and epochs;
     Starling once with its chunks over the ring links and once through ZeroMQ.

Raw results go to bench/results/allreduce-<time>.jsonl; the summary is printed.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
import starling_runs  # noqa: E402

RANK = os.path.join(starling_runs.BUILD, "bench", "allreduce_rank")
MiB = 1 << 20


def iterations_for(size):
    return 30 if size <= MiB else 10 if size <= 16 * MiB else 5


def starling_allreduce(world, sizes, transport):
    with tempfile.TemporaryDirectory(prefix=f"starling-ar{world}-") as d:
        return starling_allreduce_in(d, world, sizes, transport)


# How each variant's chunks travel (allreduce_rank --links): over TCP ring links, through
# ZeroMQ over tcp:// or ipc://, or over Unix-domain socket ring links between ipc:// nodes.
LINKS = {"tcp": "tcp", "zmq-tcp": "zeromq", "ipc": "zeromq", "ipc-links": "unix"}


def starling_allreduce_in(d, world, sizes, transport):
    lines = ["[cluster]", 'name = "ar"', "[topology]", 'kind = "ring"']
    ports = starling_runs.free_ports(world)
    for i in range(world):
        endpoint = (f"ipc://{d}/r{i}.sock" if transport in ("ipc", "ipc-links")
                    else f"tcp://127.0.0.1:{ports[i]}")
        lines += ["[[node]]", f'id = "r{i}"', f'endpoint = "{endpoint}"']
    with open(os.path.join(d, "ring.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    results = {}
    for size in sizes:  # one size per launch, so each gets its own iteration count
        procs = [subprocess.Popen([RANK, "--config", os.path.join(d, "ring.toml"), "--node", f"r{i}",
                                   "--sizes", str(size), "--iterations", str(iterations_for(size)),
                                   "--warmup", "2",
                                   "--links", LINKS[transport]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True) for i in range(world)]
        outs = [p.communicate()[0] for p in procs]
        if any(p.returncode != 0 for p in procs):
            raise RuntimeError(f"allreduce_rank failed: {outs}")
        # The collective ends for everyone at about the same time; report the slowest rank.
        rows = [json.loads(line) for out in outs for line in out.splitlines() if line.startswith("{")]
        results[size] = max(r["median_s"] for r in rows)
    return results


PROBE = os.path.join(starling_runs.BUILD, "bench", "raw_ring_probe")


def raw_ring_probe(world, sizes, flags=()):
    """The design probe (raw_ring_probe.cc): the same ring over plain TCP sockets. flags:
    --no-checksum (transfer and reduction only), --transfer-only (the bytes alone: the floor of
    any allreduce over loopback TCP here)."""
    results = {}
    for size in sizes:
        held = []  # hold every port until all are chosen, so they differ
        for _ in range(world):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        ports = ",".join(str(s.getsockname()[1]) for s in held)
        for s in held:
            s.close()
        procs = [subprocess.Popen([PROBE, "--rank", str(r), "--ports", ports,
                                   "--bytes", str(size), "--iterations", str(iterations_for(size))]
                                  + list(flags),
                                  stdout=subprocess.PIPE, text=True) for r in range(world)]
        outs = [p.communicate()[0] for p in procs]
        if any(p.returncode != 0 for p in procs):
            raise RuntimeError(f"raw_ring_probe failed: {outs}")
        results[size] = max(json.loads(o)["median_s"] for o in outs)
    return results


def gloo_allreduce(world, sizes):
    results = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix=f"starling-gloo{world}-") as out:
            subprocess.run(["/usr/bin/python3", os.path.join(HERE, "gloo_allreduce.py"), "--world",
                            str(world), "--port", str(starling_runs.free_ports(1)[0]), "--sizes",
                            str(size), "--iterations", str(iterations_for(size)), "--out", out],
                           check=True, capture_output=True)
            rows = []
            for name in os.listdir(out):
                with open(os.path.join(out, name)) as f:
                    rows += json.load(f)
        results[size] = max(r["median_s"] for r in rows)
    return results


COPY_SCRIPT = """
import os, sys, time
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import torch
torch.set_num_threads(1)
n = 64 << 20
src = torch.ones(n // 4); dst = torch.empty(n // 4)
dst.copy_(src)
start = time.perf_counter(); reps = 20
for _ in range(reps): dst.copy_(src)
print(n * reps / (time.perf_counter() - start))
"""


def copy_bandwidth(processes):
    """Aggregate memcpy bandwidth (bytes copied per second) of `processes` concurrent copiers."""
    procs = [subprocess.Popen(["/usr/bin/python3", "-c", COPY_SCRIPT], stdout=subprocess.PIPE,
                              text=True) for _ in range(processes)]
    return sum(float(p.communicate()[0]) for p in procs)


def training(epochs):
    sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
    import cluster_bench  # noqa: E402
    starling = cluster_bench.starling("allreduce", epochs)
    # The same cluster with its chunks through ZeroMQ: what the ring links gain in training.
    starling_zmq = cluster_bench.starling("allreduce", epochs,
                                          sync_extra='\ncollective_transport = "zeromq"')
    ddp = cluster_bench.pytorch("ddp", epochs)
    return {
        "starling_allreduce": starling_runs.throughput(starling),
        "starling_allreduce_zmq": starling_runs.throughput(starling_zmq),
        "pytorch_ddp": cluster_bench.pytorch_throughput(ddp),
        "starling_accuracy": statistics.mean(s["accuracy"] for s in starling_runs.summaries(starling)),
        "ddp_accuracy": statistics.mean(r["accuracy"] for r in ddp),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--worlds", default="2,4,8")
    p.add_argument("--sizes-mib", default="1,16,100")
    p.add_argument("--train-rounds", type=int, default=2)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--probe", action="store_true",
                   help="also run raw_ring_probe in the same run: the ring over plain TCP sockets "
                        "with checksums, without them, and moving the bytes alone (the floor)")
    args = p.parse_args()
    worlds = [int(w) for w in args.worlds.split(",")]
    sizes = [int(s) * MiB for s in args.sizes_mib.split(",")]
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    out_path = os.path.join(ROOT, "bench", "results", time.strftime("allreduce-%Y%m%d-%H%M%S.jsonl"))
    with open(out_path, "w") as out:
        copy = copy_bandwidth(2)
        out.write(json.dumps({"copy_bandwidth_bytes_per_s": copy}) + "\n")
        table = []
        for world in worlds:
            tcp = starling_allreduce(world, sizes, "tcp")
            zmq_tcp = starling_allreduce(world, sizes, "zmq-tcp")
            ipc = starling_allreduce(world, sizes, "ipc")
            ipc_links = starling_allreduce(world, sizes, "ipc-links")
            gloo = gloo_allreduce(world, sizes)
            probe = raw_ring_probe(world, sizes) if args.probe else {}
            probe_bare = raw_ring_probe(world, sizes, ["--no-checksum"]) if args.probe else {}
            floor = raw_ring_probe(world, sizes, ["--transfer-only"]) if args.probe else {}
            for size in sizes:
                row = {"world": world, "bytes": size, "starling_tcp_s": tcp[size],
                       "starling_zmq_tcp_s": zmq_tcp[size], "starling_ipc_s": ipc[size],
                       "starling_ipc_links_s": ipc_links[size], "gloo_s": gloo[size]}
                if args.probe:
                    row.update({"raw_probe_s": probe[size], "raw_probe_no_checksum_s": probe_bare[size],
                                "transfer_floor_s": floor[size]})
                out.write(json.dumps(row) + "\n")
                out.flush()
                table.append(row)
                print(json.dumps(row), flush=True)
        trains = []
        for r in range(args.train_rounds):
            t = training(args.epochs)
            out.write(json.dumps({"training_round": r, **t}) + "\n")
            print(json.dumps(t), flush=True)
            trains.append(t)

    print(f"\naggregate memcpy bandwidth (2 copiers): {copy / 1e9:.1f} GB/s")
    print("(tcp: chunks over Starling's TCP ring links; zmq tcp and zmq ipc: chunks through ZeroMQ;")
    print(" ipc links: ipc:// nodes, chunks over Unix-domain socket ring links)")
    print("world  size     Starling tcp   zmq tcp        zmq ipc        ipc links      Gloo tcp      "
          "tcp/Gloo  zmq tcp/Gloo  ipc/Gloo  ipc links/Gloo  tcp % of copy bound")
    for row in table:
        n, b = row["world"], row["bytes"]
        bw = lambda s: b / s / 1e9  # noqa: E731
        bound = copy / (4 * (n - 1)) / 1e9
        print(f"{n:<6} {b // MiB:>4} MiB  {bw(row['starling_tcp_s']):6.2f} GB/s    "
              f"{bw(row['starling_zmq_tcp_s']):6.2f} GB/s    "
              f"{bw(row['starling_ipc_s']):6.2f} GB/s    {bw(row['starling_ipc_links_s']):6.2f} GB/s    "
              f"{bw(row['gloo_s']):6.2f} GB/s    "
              f"{row['gloo_s'] / row['starling_tcp_s']:5.2f}x    {row['gloo_s'] / row['starling_zmq_tcp_s']:5.2f}x        "
              f"{row['gloo_s'] / row['starling_ipc_s']:5.2f}x    {row['gloo_s'] / row['starling_ipc_links_s']:5.2f}x          "
              f"{100 * bw(row['starling_tcp_s']) / bound:5.1f}% (bound {bound:.2f} GB/s)")
    if args.probe:
        print("\ndesign probe, ring over plain TCP sockets (raw_ring_probe):")
        print("(floor: the ring's bytes moved with no reduction and no checksum; no allreduce over")
        print(" loopback TCP on this machine can be faster, so Gloo / floor caps any ratio to Gloo)")
        print("world  size     probe          probe/Gloo  no checksum   no checksum/Gloo  floor         Gloo/floor")
        for row in table:
            n, b = row["world"], row["bytes"]
            print(f"{n:<6} {b // MiB:>4} MiB  {b / row['raw_probe_s'] / 1e9:6.2f} GB/s    "
                  f"{row['gloo_s'] / row['raw_probe_s']:5.2f}x     {b / row['raw_probe_no_checksum_s'] / 1e9:6.2f} GB/s"
                  f"     {row['gloo_s'] / row['raw_probe_no_checksum_s']:5.2f}x            "
                  f"{b / row['transfer_floor_s'] / 1e9:6.2f} GB/s   {row['gloo_s'] / row['transfer_floor_s']:5.2f}x")
    ratios = [t["starling_allreduce"] / t["pytorch_ddp"] for t in trains]
    if not trains:  # --train-rounds 0: the collectives only
        print("raw:", os.path.relpath(out_path, ROOT))
        return
    zmq_ratios = [t["starling_allreduce_zmq"] / t["pytorch_ddp"] for t in trains]
    print(f"\ntraining, 4 nodes, {args.epochs} epochs: Starling allreduce / PyTorch DDP samples/s "
          f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}..{max(ratios):.2f}] (chunks through "
          f"ZeroMQ instead: {statistics.median(zmq_ratios):.2f}x); accuracy "
          f"Starling {100 * statistics.median(t['starling_accuracy'] for t in trains):.2f}%, "
          f"DDP {100 * statistics.median(t['ddp_accuracy'] for t in trains):.2f}%")
    print("raw:", os.path.relpath(out_path, ROOT))


if __name__ == "__main__":
    main()
