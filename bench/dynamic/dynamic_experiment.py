"""Issue 6's experiment: dynamic (drift-threshold) averaging against periodic averaging.

8 starlingd nodes on this machine, on a ring (the graph dynamic balancings widen through),
Fashion-MNIST, mlp and cnn, iid and Dirichlet(0.3) partitions. For each:
  periodic averaging of all nodes every step and every 8 steps (mode = "allreduce",
  allreduce = "parameters", period 1 / 8: the baseline of Kamp et al.), and
  dynamic averaging (mode = "dynamic", checks every 8 steps) for a sweep of delta, relative to
  ||r||^2 so one sweep fits both models;
and records the total bytes all nodes sent against the final test accuracy (mean over nodes)
of the model the nodes agree on at the end (one final allreduce for every method).
Writes bench/results/dynamic-<time>.jsonl and, with --plot, the figure.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
import starling_runs  # noqa: E402

MODELS = {
    # epochs of each node's shard (7,500 samples), learning rate, evaluation batch
    "mlp": {"epochs": 4, "lr": 0.05, "eval_batch": 1000},
    "cnn": {"epochs": 2, "lr": 0.05, "eval_batch": 100},
}
PARTITIONS = {"iid": "iid", "dirichlet0.3": "dirichlet:0.3"}
DELTAS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]


def training(model, partition):
    m = MODELS[model]
    return (f'model = "{model}"\npartition = "{partition}"\nbatch_size = 32\nlr = {m["lr"]}\n'
            f'momentum = 0.9\nlr_schedule = "cosine"\nepochs = {m["epochs"]}\n'
            f'eval_every = 1000000\neval_batch_size = {m["eval_batch"]}')


def run(model, partition, sync):
    # Every method ends with one allreduce of all models (sync.final_allreduce), so each is
    # judged by the model the cluster agrees on, as periodic averaging ends with one anyway.
    metrics = starling_runs.run_cluster("dyn", 8, 'kind = "ring"', training(model, partition),
                                        sync + "\nfinal_allreduce = true")
    s = starling_runs.summaries(metrics)
    return {
        "bytes": sum(x["bytes_sent"] for x in s),
        "accuracy": statistics.mean(x["accuracy"] for x in s),
        "accuracy_min": min(x["accuracy"] for x in s),
        "accuracy_max": max(x["accuracy"] for x in s),
        "train_seconds": max(x["train_seconds"] for x in s),
        "sync": s[0]["sync"],
        "violations": sum(x["sync"].get("violations", 0) for x in s),
        "local_balancings": sum(x["sync"].get("local_balancings", 0) for x in s),
        "full_syncs": sum(x["sync"].get("full_syncs", 0) for x in s),
    }


def periodic_name(period):
    return "periodic every step" if period == 1 else f"periodic every {period} steps"


def dynamic_name(precision):
    return "dynamic" if precision == "f32" else f"dynamic, {precision}"


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), sharey=False,
                             squeeze=False)
    axes = axes[0]
    markers = iter("XPs^vD")
    periodic_markers = {m: next(markers) for m in dict.fromkeys(r["method"] for r in rows)
                        if m.startswith("periodic")}
    for ax, model in zip(axes, models):
        for partition, color in zip(PARTITIONS, ["tab:blue", "tab:orange"]):
            sub = [r for r in rows if r["model"] == model and r["partition"] == partition]
            for method, style in (("dynamic", "-"), ("dynamic, f16", "--")):
                dyn = sorted([r for r in sub if r["method"] == method], key=lambda r: r["bytes"])
                if not dyn:
                    continue
                ax.plot([r["bytes"] / 1e6 for r in dyn], [100 * r["accuracy"] for r in dyn],
                        marker="o", linestyle=style, color=color,
                        label=f"{method} (relative delta), {partition}")
                for r in dyn:
                    ax.annotate(f"{r['delta']:g}", (r["bytes"] / 1e6, 100 * r["accuracy"]),
                                textcoords="offset points", xytext=(3, 3), fontsize=7)
            for r in sub:
                if r["method"] in periodic_markers:
                    ax.scatter([r["bytes"] / 1e6], [100 * r["accuracy"]], color=color, s=80,
                               marker=periodic_markers[r["method"]],
                               label=f"{r['method']}, {partition}")
        ax.set_xscale("log")
        ax.set_xlabel("bytes sent by all 8 nodes (MB, log scale)")
        ax.set_ylabel("final test accuracy (%)")
        epochs = sorted({r.get("epochs", MODELS[model]["epochs"]) for r in rows if r["model"] == model})
        ax.set_title(f"{model}: 8 nodes, ring, Fashion-MNIST, {'/'.join(f'{e:g}' for e in epochs)} epochs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--partitions", default="iid,dirichlet0.3")
    p.add_argument("--deltas", default=",".join(str(d) for d in DELTAS))
    p.add_argument("--epochs", default="",
                   help="override epochs per model, e.g. mlp=16,cnn=6 (defaults: "
                        + ", ".join(f"{k}={v['epochs']}" for k, v in MODELS.items()) + ")")
    p.add_argument("--periods", default="1,8", help="periodic-averaging periods to run")
    p.add_argument("--check-period", type=int, default=8,
                   help="dynamic averaging: steps between checks of the local condition (b)")
    p.add_argument("--precisions", default="f32",
                   help="dynamic averaging: wire precisions to run (f32, f16 or f32,f16); f16 sends "
                        "binary16 drifts from the reference (periodic averaging is always f32)")
    p.add_argument("--dynamic-extra", default="",
                   help="more [sync] lines for the dynamic runs, separated by ';' "
                        "(e.g. 'max_lead_steps = 32;heartbeat_ms = 20')")
    p.add_argument("--plot", default=os.path.join(ROOT, "bench", "dynamic", "bytes_vs_accuracy.png"))
    p.add_argument("--from-results", help="only plot these results (jsonl files, comma-separated)")
    p.add_argument("--require-extra", default="",
                   help="with --from-results: plot only the dynamic runs whose --dynamic-extra "
                        "contains this text (periodic runs are always plotted)")
    args = p.parse_args()
    for item in filter(None, args.epochs.split(",")):
        name, value = item.split("=")
        MODELS[name]["epochs"] = float(value)
    if args.from_results:
        rows = []
        for path in args.from_results.split(","):
            with open(path) as f:
                rows += [json.loads(line) for line in f if line.strip()]
        rows = [r for r in rows if not r["method"].startswith("dynamic")
                or args.require_extra in (r.get("dynamic_extra") or "")]
        # One point per setting: a later file's run of the same setting replaces an earlier one.
        unique = {(r["model"], r["partition"], r["method"], r["delta"]): r for r in rows}
        plot(list(unique.values()), args.plot)
        return
    extra = "".join("\n" + line.strip() for line in args.dynamic_extra.split(";") if line.strip())
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    out_path = os.path.join(ROOT, "bench", "results", time.strftime("dynamic-%Y%m%d-%H%M%S.jsonl"))
    rows = []
    with open(out_path, "w") as out:
        for model in args.models.split(","):
            for partition in args.partitions.split(","):
                configs = [(periodic_name(int(h)), None,
                            f'mode = "allreduce"\nallreduce = "parameters"\nperiod = {int(h)}')
                           for h in filter(None, args.periods.split(","))]
                for precision in args.precisions.split(","):
                    for d in (float(x) for x in filter(None, args.deltas.split(","))):
                        configs.append((dynamic_name(precision), d,
                                        f'mode = "dynamic"\nperiod = {args.check_period}\n'
                                        f'delta_mode = "relative"\ndelta = {d}\n'
                                        f'wire_precision = "{precision}"' + extra))
                for method, delta, sync in configs:
                    result = run(model, PARTITIONS[partition], sync)
                    row = {"model": model, "partition": partition, "method": method, "delta": delta,
                           "epochs": MODELS[model]["epochs"],
                           "check_period": args.check_period if method.startswith("dynamic") else None,
                           "dynamic_extra": args.dynamic_extra if method.startswith("dynamic") else None,
                           **result}
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    rows.append(row)
                    print(f"{model:4} {partition:13} {method:26} {'' if delta is None else delta:>6} "
                          f"{row['bytes'] / 1e6:10.1f} MB  acc {100 * row['accuracy']:.2f}% "
                          f"[{100 * row['accuracy_min']:.2f}..{100 * row['accuracy_max']:.2f}]  "
                          f"viol {row['violations']} local {row['local_balancings']} full {row['full_syncs']}",
                          flush=True)
    plot(rows, args.plot)
    print("raw:", os.path.relpath(out_path, ROOT), " plot:", os.path.relpath(args.plot, ROOT))


if __name__ == "__main__":
    main()
