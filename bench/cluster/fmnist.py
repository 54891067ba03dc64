"""Fashion-MNIST for the Python peers: the same IDX files, normalisation and iid shards as
Starling (training set mean and standard deviation; a seeded permutation cut into equal
parts)."""
import gzip
import os
import struct

import numpy as np
import torch

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir=DATA_DIR):
    def path(name):
        p = os.path.join(data_dir, name)
        return p + ".gz" if os.path.exists(p + ".gz") else p
    xtr = _read_idx(path("train-images-idx3-ubyte")).astype(np.float32) / 255.0
    ytr = _read_idx(path("train-labels-idx1-ubyte")).astype(np.int64)
    xte = _read_idx(path("t10k-images-idx3-ubyte")).astype(np.float32) / 255.0
    yte = _read_idx(path("t10k-labels-idx1-ubyte")).astype(np.int64)
    mean, std = xtr.mean(), xtr.std()
    xtr = (xtr - mean) / std
    xte = (xte - mean) / std
    return (torch.from_numpy(xtr.reshape(-1, 784)), torch.from_numpy(ytr),
            torch.from_numpy(xte.reshape(-1, 784)), torch.from_numpy(yte))


def iid_shard(x, y, rank, world, seed=1):
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    per = len(y) // world
    idx = order[rank * per:(rank + 1) * per]
    return x[idx], y[idx]


def mlp():
    return torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10))


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, len(y), batch):
        correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return correct / len(y)
