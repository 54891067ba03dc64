"""The PyTorch peers Starling's cluster benchmark measures against, one process per rank over
Gloo on loopback TCP, one intra-op thread each (like each starlingd):

  pma: local SGD with torch.distributed's PeriodicModelAverager (parameters averaged across all
       ranks every `period` steps);
  ddp: DistributedDataParallel (gradients allreduced every step).

Each rank trains an iid quarter of Fashion-MNIST with the idiomatic loop (DataLoader over a
TensorDataset, shuffle, F.cross_entropy, optim.SGD). The clock covers the training loop only;
evaluations pause it. Writes one JSON result per rank into --out.
"""
import argparse
import json
import os
import time

# One thread per process, like each starlingd: LibTorch's pool (set below) and OpenBLAS's own,
# which must be set before torch loads it (otherwise every GEMM runs on two threads, one of
# them busy-waiting, and four processes starve each other).
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import fmnist  # noqa: E402


def run(rank, args):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(args.port)
    dist.init_process_group("gloo", rank=rank, world_size=args.world)
    xtr, ytr, xte, yte = fmnist.load()
    x, y = fmnist.iid_shard(xtr, ytr, rank, args.world)
    torch.manual_seed(args.seed)  # the same initial model on every rank
    model = fmnist.mlp()
    if args.mode == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    averager = None
    if args.mode == "pma":
        from torch.distributed.algorithms.model_averaging.averagers import PeriodicModelAverager
        averager = PeriodicModelAverager(period=args.period, warmup_steps=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch, shuffle=True)
    steps_per_epoch = len(loader)
    total_steps = int(round(args.epochs * steps_per_epoch))
    # The same schedules as Starling's [training] lr_schedule: constant, or cosine from lr to 0
    # over the run.
    scheduler = None
    if args.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    step, samples, eval_seconds = 0, 0, 0.0
    evals = []
    dist.barrier()
    # The clock runs over the whole loop, batch loading included; evaluations are taken out.
    start = time.perf_counter()
    while step < total_steps:
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            if averager is not None:
                averager.average_parameters(model.parameters())
            step += 1
            samples += len(yb)
            if args.eval_every and step % args.eval_every == 0:
                eval_start = time.perf_counter()
                accuracy = fmnist.accuracy(model, xte, yte)
                eval_seconds += time.perf_counter() - eval_start
                evals.append({"step": step,
                              "train_seconds": time.perf_counter() - start - eval_seconds,
                              "accuracy": accuracy})
                if args.stop_at and evals[-1]["accuracy"] >= args.stop_at:
                    total_steps = step  # reached the target: stop (all ranks agree below)
            if step >= total_steps:
                break
        # Every rank must run the same number of collectives: agree on where to stop.
        t = torch.tensor([total_steps])
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        total_steps = int(t.item())
    train_seconds = time.perf_counter() - start - eval_seconds
    final = fmnist.accuracy(model, xte, yte)
    result = {"system": "pytorch-" + args.mode, "rank": rank, "steps": step, "samples": samples,
              "train_seconds": train_seconds, "accuracy": final, "evals": evals}
    # One file per rank: four processes printing at once would interleave their lines.
    with open(os.path.join(args.out, f"rank-{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["pma", "ddp"], required=True)
    p.add_argument("--world", type=int, default=4)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    p.add_argument("--period", type=int, default=8)
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--stop-at", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="directory for one JSON result per rank")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    mp.spawn(run, args=(args,), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
