"""The peer for Starling's ring allreduce benchmark: torch.distributed's allreduce over Gloo on
loopback TCP, world N processes, one thread each (like each allreduce_rank), float32 buffers.
Times each dist.all_reduce call (mean is a sum followed by a division, as in DDP) and writes
one JSON line per size into --out/rank-<r>.json (rank 0's timings are reported)."""
import argparse
import json
import os
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402


def run(rank, args):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(args.port)
    dist.init_process_group("gloo", rank=rank, world_size=args.world)
    results = []
    for size in args.sizes:
        t = torch.full((size // 4,), float(rank + 1))
        times = []
        for it in range(args.warmup + args.iterations):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(t)
            t.div_(args.world)
            elapsed = time.perf_counter() - start
            if it >= args.warmup:
                times.append(elapsed)
        times.sort()
        median = times[len(times) // 2]
        results.append({"system": "gloo", "world": args.world, "bytes": size, "median_s": median,
                        "min_s": times[0], "max_s": times[-1],
                        "algbw_gbps": size / median / 1e9})
    with open(os.path.join(args.out, f"rank-{rank}.json"), "w") as f:
        json.dump(results, f)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--world", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], required=True)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    mp.spawn(run, args=(args,), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
