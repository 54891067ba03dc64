#!/usr/bin/python3
"""PyTorch peer of bench/train_throughput.cc: same data, model, batch, lr, momentum, threads.

Two loops:
  idiomatic  DataLoader(TensorDataset, shuffle=True, batch_size=B), nn.Sequential, optim.SGD,
             F.cross_entropy: what a PyTorch user writes.
  tuned      the same model and optimizer, batches cut by randperm + index_select (no DataLoader)
             and zero_grad(set_to_none=True): a hand-tuned loop, reported for transparency.

--device cuda (a GPU machine's PyTorch): the model lives on the GPU; idiomatic keeps the data on
the host and moves each batch (pinned, non-blocking), tuned keeps the whole training set on the
GPU and cuts batches there, as Starling's Trainer does. Timing starts and stops on a
synchronised device.

Run with Debian's interpreter (/usr/bin/python3) and python3-torch (bench/setup.sh).
Prints one JSON line per measurement.
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time


def threads_from_argv(default=1):
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return str(default)


# Debian's torch runs its GEMMs on a pthreads OpenBLAS whose pool defaults to one thread per
# core and is sized when the library loads: bound it to --threads before torch is imported, as
# Starling's Trainer bounds it for its own threads setting.
os.environ["OPENBLAS_NUM_THREADS"] = threads_from_argv()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(data_dir):
    """Normalised like Starling: (x/255 - mean) / std with the training images' statistics."""
    def split(prefix):
        x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
        return torch.from_numpy(x.astype(np.float32) / 255.0).reshape(-1, 784), \
            torch.from_numpy(y.astype(np.int64))
    x_train, y_train = split("train")
    x_test, y_test = split("t10k")
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


def make_model(name):
    if name == "logreg":
        return nn.Sequential(nn.Linear(784, 10))
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                             nn.Linear(256, 10))
    if name == "cnn":
        # conv5x5 32 -> ReLU -> maxpool2 -> conv5x5 64 -> ReLU -> maxpool2 -> fc128 -> ReLU -> fc10
        return nn.Sequential(nn.Unflatten(1, (1, 28, 28)),
                             nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    sys.exit(f"unknown model {name}")


def idiomatic_batches(x, y, batch, device):
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                         batch_size=batch, shuffle=True,
                                         pin_memory=device.type == "cuda")
    while True:
        for images, labels in loader:
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def tuned_batches(x, y, batch, device):
    x, y = x.to(device), y.to(device)
    n = x.shape[0]
    while True:
        perm = torch.randperm(n, device=device)
        for begin in range(0, n, batch):
            index = perm[begin:begin + batch]
            yield x.index_select(0, index), y.index_select(0, index)


def measure(args, loop, x, y):
    torch.manual_seed(1)
    device = torch.device(args.device)
    model = make_model(args.model).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    batches = (idiomatic_batches if loop == "idiomatic" else tuned_batches)(x, y, args.batch,
                                                                           device)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    set_to_none = loop == "tuned"

    def step():
        images, labels = next(batches)
        optimizer.zero_grad(set_to_none=set_to_none)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return images.shape[0]

    for _ in range(args.warmup):
        step()
    synchronize()
    samples = steps = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    elapsed = 0.0
    while elapsed < args.seconds:
        samples += step()
        steps += 1
        elapsed = time.perf_counter() - start
    synchronize()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return {"impl": f"pytorch-{loop}", "mode": "throughput", "model": args.model,
            "batch": args.batch, "threads": torch.get_num_threads(), "lr": args.lr,
            "momentum": args.momentum, "steps": steps, "seconds": elapsed, "cpu_seconds": cpu,
            "samples_per_s": samples / elapsed, "samples_per_cpu_s": samples / cpu,
            "device": str(device), "torch": torch.__version__}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mlp", choices=["logreg", "mlp", "cnn"])
    parser.add_argument("--loop", default="idiomatic", choices=["idiomatic", "tuned"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    x_train, y_train, _, _ = load_fashion_mnist(args.data_dir)
    print(json.dumps(measure(args, args.loop, x_train, y_train)), flush=True)


if __name__ == "__main__":
    main()
