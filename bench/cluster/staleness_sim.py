"""What a late mix costs, with no network and no time-sharing: an idealised simulation.

Four replicas of the benchmark's model (Fashion-MNIST, the 784-256-256-10 MLP, iid quarters,
batch 32, lr 0.05, momentum 0.9, cosine to 0, 2 epochs) are trained in one process, step by
step in lockstep. Every `period` steps each replica snapshots its parameters s_i, and the round
x_i <- x_i + (sum_j W_ij s_j - s_i) is applied `delay` steps later, exactly as Starling applies
a round (daemon/gossip_sync.h): delay 0 is staleness 0; with staleness 1 Starling's delay is
whatever the exchange takes, at most `period` (the `applied_after_steps` of its gossip lines).
`--damping b` applies b times the correction instead. `--schedule "4@0.25,6@0.5,12@0.75,64"`
changes the period by phase, as `[sync] period_schedule` does (each phase counts its period
from its own start; the numbers after @ are fractions of the run).

W is the exact average ("complete", what PeriodicModelAverager does), Starling's one-peer
exponential graph ("exp": node i averages with node i - 2^(round mod 2)), pairs that swap
("pairs": i with i xor 2^(round mod 2)), or the ring with Metropolis weights (1/3).

Per-node delays, as a real cluster has them: `--lags "1:265,8:84"` draws each node's delay
for each round from a distribution (e.g. the `applied_after_steps` counts of a real run);
`--phases random` lets each node reach each sync point at a random step of the period and
apply the round once its partners got there. `--form fresh` applies a late round as
x <- x + w (sum_j s_j - k x), mixing the neighbours' snapshots with the model as it is now,
instead of Starling's x <- x + (m - s_i).

It separates what staleness costs the algorithm from what a real cluster adds (stragglers,
lost rounds): bench/RESULTS-cluster.md, "What staleness costs" and "Bounding how late a round
is applied".

    python3 bench/cluster/staleness_sim.py --graph exp --delays 0,1,2,4,8 --seeds 1,2,3
    python3 bench/cluster/staleness_sim.py --graph exp --delays 0 --schedule 4@0.25,6@0.5,12@0.75,64
    python3 bench/cluster/staleness_sim.py --graph exp --lags 1:265,2:12,3:19,4:23,5:20,6:21,7:24,8:84
"""
import argparse
import math
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import fmnist  # noqa: E402

WORLD = 4


def mixing_partners(graph, node, round_index):
    """Who node averages with in this round, itself included; uniform weights over them."""
    if graph == "complete":
        return list(range(WORLD))
    hop = 1 << (round_index % int(math.log2(WORLD)))
    if graph == "exp":  # Starling's one-peer exponential graph: receive from node - 2^k
        return [node, (node - hop) % WORLD]
    if graph == "pairs":  # the hypercube's dimensions in turn: node and node xor 2^k swap
        return [node, node ^ hop]
    if graph == "ring":
        return [node, (node + 1) % WORLD, (node - 1) % WORLD]
    if graph == "none":
        return [node]
    raise ValueError(graph)


def parse_schedule(text, period):
    """"4@0.25,16": period 4 until a quarter of the steps, then 16; "" is `period` throughout."""
    if not text:
        return [(period, 1.0)]
    phases = []
    for part in text.split(","):
        length, _, until = part.partition("@")
        phases.append((int(length), float(until) if until else 1.0))
    return phases


def sync_steps(phases, total):
    """The steps after which a round starts: each phase counts its period from its own start."""
    steps, start = set(), 0
    for length, until in phases:
        end = int(round(until * total))
        steps.update(range(start + length, end + 1, length))
        start = end
    return steps


def period_at(sync_at, step):
    """The length of the period that ends at sync step `step`."""
    earlier = [s for s in sync_at if s < step]
    return step - (max(earlier) if earlier else 0)


def apply_round(model, theirs, own, form, damping):
    """Applies one round to `model`, the replica now. The uniform mix of the snapshots is
    m = (own + sum theirs) / (1 + len(theirs)). "delta" adds m - own (Starling: the cluster's
    average is kept, and a late correction removes a disagreement training may already have
    removed); "fresh" adds w (sum theirs - len(theirs) x) with x the model now, w = 1/(1 +
    len(theirs)): the neighbours' snapshots are mixed with the current model, so nothing is
    undone twice, at the price of pulling x back by w of what it learnt since its snapshot."""
    weight = 1.0 / (1 + len(theirs))
    for k, p in enumerate(model.parameters()):
        if form == "delta":
            correction = (own[k] + sum(t[k] for t in theirs)) * weight - own[k]
        else:
            correction = (sum(t[k] for t in theirs) - len(theirs) * p) * weight
        p.add_(correction, alpha=damping)


def train(data, seed, graph, period, delay, damping, epochs, batch=32, lr=0.05, schedule="",
          phases="fixed", form="delta", lag_distribution=(), late_damping=None):
    xtr, ytr, xte, yte = data
    shards = [fmnist.iid_shard(xtr, ytr, r, WORLD) for r in range(WORLD)]
    torch.manual_seed(seed)
    first = fmnist.mlp()
    models = [fmnist.mlp() for _ in range(WORLD)]
    for m in models:
        m.load_state_dict(first.state_dict())
    optimizers = [torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9) for m in models]
    steps_per_epoch = len(shards[0][1]) // batch
    total = int(steps_per_epoch * epochs)
    sync_at = sync_steps(parse_schedule(schedule, period), total)
    orders = [torch.Generator().manual_seed(seed * 100 + r) for r in range(WORLD)]
    permutation = [None] * WORLD
    # Applies still to come: (step at which to apply, replica, partners' snapshots, own
    # snapshot, whether it comes a whole period late).
    pending = []
    phase_rng = torch.Generator().manual_seed(seed * 7919 + 1)
    if late_damping is None:
        late_damping = damping
    lags = [d for d, _ in lag_distribution]
    lag_weights = torch.tensor([float(w) for _, w in lag_distribution])
    round_index = 0
    for step in range(total):
        rate = 0.5 * lr * (1 + math.cos(math.pi * step / total))
        for r in range(WORLD):
            if step % steps_per_epoch == 0:
                permutation[r] = torch.randperm(len(shards[r][1]), generator=orders[r])
            k = step % steps_per_epoch
            rows = permutation[r][k * batch:(k + 1) * batch]
            for group in optimizers[r].param_groups:
                group["lr"] = rate
            loss = torch.nn.functional.cross_entropy(models[r](shards[r][0][rows]),
                                                     shards[r][1][rows])
            optimizers[r].zero_grad()
            loss.backward()
            optimizers[r].step()
        done = step + 1
        with torch.no_grad():
            due = [a for a in pending if a[0] == done]
            pending = [a for a in pending if a[0] != done]
            for _, r, theirs, own, a_period_late in due:
                apply_round(models[r], theirs, own, form,
                            late_damping if a_period_late else damping)
            if done in sync_at:
                # A round in flight is applied before the next snapshot, as in Starling.
                assert not pending, "delay must not exceed the period"
                snapshots = [[p.detach().clone() for p in m.parameters()] for m in models]
                length = period_at(sync_at, done)
                if phases == "random":
                    # Where each node reaches this sync point, in steps of wall time: a node
                    # applies the round once the later of itself and its partners got there.
                    offset = torch.randint(0, length, (WORLD,), generator=phase_rng).tolist()
                for r in range(WORLD):
                    partners = [j for j in mixing_partners(graph, r, round_index) if j != r]
                    if lags:
                        late = min(length, lags[int(torch.multinomial(
                            lag_weights, 1, generator=phase_rng))])
                    elif phases == "fixed":
                        late = delay
                    else:
                        late = max([0] + [offset[j] - offset[r] for j in partners])
                    entry = (done + late, r, [snapshots[j] for j in partners], snapshots[r],
                             late >= length)
                    if late == 0:
                        apply_round(models[r], entry[2], entry[3], form, damping)
                    else:
                        pending.append(entry)
                round_index += 1
    return sum(fmnist.accuracy(m, xte, yte) for m in models) / WORLD, round_index


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graph", choices=["complete", "exp", "pairs", "ring", "none"], default="exp")
    p.add_argument("--period", type=int, default=8)
    p.add_argument("--schedule", default="",
                   help='periods by phase, "4@0.25,16": 4 for the first quarter of the steps, then 16')
    p.add_argument("--delays", default="0,8", help="comma-separated steps from snapshot to apply")
    p.add_argument("--damping", type=float, default=1.0)
    p.add_argument("--late-damping", type=float, default=None,
                   help="damping for rounds applied a whole period late only (default: --damping)")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--lags", default="",
                   help='per node and round, the delay is drawn from this distribution, '
                        '"1:265,8:84": delay 1 with weight 265, 8 with weight 84 (e.g. the '
                        'applied_after_steps counts of a real run); --delays is ignored')
    p.add_argument("--phases", choices=["fixed", "random"], default="fixed",
                   help="fixed: every round applied `delay` steps late on every node; random: "
                        "each node reaches each sync point at a random step of the period, and "
                        "applies the round when its partners have got there too (the delay is "
                        "then per node and round; --delays is ignored)")
    p.add_argument("--form", choices=["delta", "fresh"], default="delta",
                   help="how a round is applied to a replica that moved on (see apply_round)")
    p.add_argument("--epochs", type=float, default=2.0)
    args = p.parse_args()
    torch.set_num_threads(1)
    data = fmnist.load()
    seeds = [int(s) for s in args.seeds.split(",")]
    lag_distribution = [tuple(int(v) for v in part.split(":"))
                        for part in args.lags.split(",") if part]
    per_node = bool(lag_distribution) or args.phases == "random"  # delays drawn, not given
    for delay in [0] if per_node else (int(d) for d in args.delays.split(",")):
        if delay > args.period:
            p.error(f"delay {delay} exceeds the period {args.period}")
        results = [train(data, s, args.graph, args.period, delay, args.damping, args.epochs,
                         schedule=args.schedule, phases=args.phases, form=args.form,
                         lag_distribution=lag_distribution, late_damping=args.late_damping)
                   for s in seeds]
        accuracies = [a for a, _ in results]
        mean = sum(accuracies) / len(accuracies)
        print(f"graph {args.graph} period {args.schedule or args.period} "
              f"delay {args.lags or ('random phases' if args.phases == 'random' else delay)} "
              f"form {args.form} "
              f"{'' if args.late_damping is None else f'late damping {args.late_damping} '}"
              f"damping {args.damping}, {results[0][1]} rounds: "
              f"mean accuracy {100 * mean:.2f}% over seeds {args.seeds} "
              f"({', '.join(f'{100 * a:.2f}' for a in accuracies)})", flush=True)


if __name__ == "__main__":
    main()
