"""Label-poisoning benchmark (issue 6): attacks x budgets under a protocol, and attack timings.

Examples (DGLCLEANER_DATA_DIR must point at the npz datasets)::

    # the paper's table cell grid (slow: tuning 20 trials x 5 folds per split and budget)
    python benchmarks/label_poisoning.py --dataset cora_ml --model gcn --protocol faithful
    # the pitfalls table: LafAK under the flawed and the faithful protocol
    python benchmarks/label_poisoning.py --attacks lafak --protocol flawed --protocol faithful
    # attack run times only (split 0, budget 10 %; min of 3 runs, with the load average)
    python benchmarks/label_poisoning.py --timing --attacks meta --repeats 3
    # seconds per victim training (split 0, the 5 faithful folds, default hyper-parameters)
    python benchmarks/label_poisoning.py --train-timing --model gcn --repeats 3

Writes a markdown table (``--md``) and the raw records (``--json``); accuracies are test
accuracy in percent, mean ± population std over the splits that were not skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from dglcleaner.api import NodeAttackContext
from dglcleaner.data.npz import load_npz_dataset
from dglcleaner.io_utils import atomic_write_json
from dglcleaner.node.protocol import get_protocol, make_split
from dglcleaner.node.runner import run_label_poisoning
from dglcleaner.node.splits import budget_of
from dglcleaner.registry import load_plugin

ATTACKS = ["rnd", "rnd-bin", "deg", "deg-bin", "lp", "mg", "lafak", "meta", "sgc", "sgc-bin", "ntk", "ntk-bin"]


def fmt(ms):
    return "-" if not ms or ms.get("n", 0) == 0 else f"{ms['mean']:.2f} ± {ms['std']:.2f}"


def load() -> str:
    """The 1/5/15-minute load average (other jobs may share this machine)."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def timing(args) -> str:
    """Attack seconds on split 0 at budget 10 %: cold (no memoized kernel; min over repeats)
    and warm (split 1 with the same graph and features, as in a table run, where LP, MG and
    NTK reuse their split-independent kernel)."""
    from dglcleaner_plugins.label_poisoning import _common  # the attacks' kernel memo

    ds = load_npz_dataset(args.dataset)
    graph = ds.graph(self_loops=False)

    def ctx_of(split_seed: int) -> NodeAttackContext:
        split = make_split(get_protocol("faithful"), ds.labels, ds.num_classes, split_seed)
        return NodeAttackContext(graph=graph, features=ds.features, labels=ds.labels.clone(),
                                 labeled_idx=split["attackable"], num_classes=ds.num_classes,
                                 budget=budget_of(len(split["attackable"]), 0.1),
                                 seed=split_seed, device=torch.device("cpu"))

    rows = [f"| attack | cold seconds, min of {args.repeats} (split 0, budget 10 %) | all cold "
            "runs | warm seconds (split 1) | flips | load average before | info |",
            "|---|---|---|---|---|---|---|"]
    for name in args.attacks:
        times, la = [], load()
        for _ in range(args.repeats):
            _common._MEMO.clear()
            t0 = time.perf_counter()
            res = load_plugin("attack", name)().run(ctx_of(0))
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        load_plugin("attack", name)().run(ctx_of(1))
        warm = time.perf_counter() - t0
        info = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in res.info.items())
        rows.append(f"| {name} | {min(times):.2f} | {' '.join(f'{t:.1f}' for t in times)} | "
                    f"{warm:.2f} | {len(res.flipped_idx)} | {la} | {info} |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


def train_timing(args) -> str:
    """Seconds per victim training (defaults: lr 0.01, wd 5e-4, dropout 0.5) on split 0's five
    faithful folds, as :func:`defend_and_test` runs them; min over repeats of the mean per fold,
    wall and CPU (process) time, and the projected CPU-hours of the tuned table row."""
    import warnings

    from dglcleaner.node.models import build_model, community_labels
    from dglcleaner.node.splits import stratified_folds
    from dglcleaner.node.training import reset_seed, train_eval

    ds = load_npz_dataset(args.dataset)
    g, y, c = ds.graph(self_loops=True), ds.labels, ds.num_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        x = ds.features.to_sparse_csr() if float((ds.features != 0).float().mean()) < 0.1 else ds.features
    split = make_split(get_protocol("faithful"), y, c, 0)
    folds = stratified_folds(split["attackable"], y, 5, seed=0)
    kw = {"clusters": community_labels(ds.adj, c)} if args.model == "cpgcn" else {}
    walls, cpus, epochs, accs = [], [], [], []
    la = load()
    for _ in range(args.repeats):
        w0, c0, ep = time.perf_counter(), time.process_time(), 0
        accs = []
        for fit, val in folds:
            reset_seed(0)
            model = build_model(args.model, x.shape[1], c, **kw)
            r = train_eval(model, g, x, y, fit, y, val, y, split["test"])
            ep += r["epochs_run"]
            accs.append(round(100 * r["test_acc"], 2))
        walls.append((time.perf_counter() - w0) / len(folds))
        cpus.append((time.process_time() - c0) / len(folds))
        epochs.append(ep / len(folds))
    n_train = 12 * 5 * 10 * 20 * 5
    hours = min(cpus) * n_train / 3600
    rows = [f"| model | s/training wall (min of {args.repeats}) | s/training CPU | epochs | ms/epoch CPU | "
            "test acc per fold | load average before | projected CPU-h of the tuned row |",
            "|---|---|---|---|---|---|---|---|",
            f"| {args.model} | {min(walls):.3f} | {min(cpus):.3f} | {epochs[0]:.0f} | "
            f"{1000 * min(cpus) / epochs[0]:.1f} | {accs} | {la} | {hours:.1f} ({n_train} trainings) |"]
    print("\n".join(rows), flush=True)
    return "\n".join(rows)


def table(args) -> tuple:
    ds = load_npz_dataset(args.dataset)
    records, lines = {}, []
    if args.resume and args.json and Path(args.json).exists():
        # rows already in the JSON are kept; the run goes on with the rest
        records = json.loads(Path(args.json).read_text())
    for pname in args.protocol:
        over = {}
        if args.trials is not None:
            over["n_trials"] = args.trials
        if args.folds is not None:
            over["n_folds"] = args.folds
        proto = get_protocol(pname, **over)
        head = "| attack | " + " | ".join(f"{b:g}" for b in args.budgets) + " |"
        lines += [f"\n**{args.dataset} · {args.model} · protocol `{pname}` ({proto.n_trials} trials, "
                  f"{proto.n_folds if proto.validation == 'cv' else 1} fold(s)) · {args.splits} splits**\n",
                  head, "|" + "---|" * (len(args.budgets) + 1)]
        for i, name in enumerate(args.attacks):
            t0, la = time.perf_counter(), load()
            key = f"{pname}/{name}"
            if key in records:
                out = records[key]
            else:
                out = run_label_poisoning(ds, load_plugin("attack", name)(), model=args.model,
                                          budgets=args.budgets, splits=args.splits, protocol=proto,
                                          seed=args.seed, clean=(i == 0))
                out["protocol"] = proto.to_dict()
                out["seconds"] = round(time.perf_counter() - t0, 1)
                out["load_before"] = la
                records[key] = out
            if i == 0:
                c = out["summary"]["clean"]["acc"]
                lines.append("| clean | " + " | ".join([fmt(c)] * len(args.budgets)) + " |")
            cells = [fmt(out["summary"]["by_budget"][f"{b:g}"]["acc"]) for b in args.budgets]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            print(lines[-1], f"({time.perf_counter() - t0:.0f} s)", flush=True)
            if args.json:
                atomic_write_json(args.json, records)
    return "\n".join(lines), records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cora_ml")
    ap.add_argument("--model", default="gcn")
    ap.add_argument("--attacks", nargs="+", default=ATTACKS)
    ap.add_argument("--budgets", nargs="+", type=float, default=[0.05, 0.1, 0.15, 0.2, 0.3])
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--protocol", action="append", default=None)
    ap.add_argument("--trials", type=int, default=None, help="override tuning trials (0: defaults)")
    ap.add_argument("--folds", type=int, default=None, help="override the defender's folds")
    ap.add_argument("--timing", action="store_true", help="attack run times only")
    ap.add_argument("--train-timing", action="store_true", help="seconds per victim training only")
    ap.add_argument("--repeats", type=int, default=1, help="timing repeats (the minimum is reported)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows already in --json and run only the missing ones")
    ap.add_argument("--md", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    args.protocol = args.protocol or ["faithful"]
    if not os.environ.get("DGLCLEANER_DATA_DIR"):
        print("note: DGLCLEANER_DATA_DIR unset; datasets come from the cache or a download")
    if args.train_timing:
        text = train_timing(args)
    else:
        text = timing(args) if args.timing else table(args)[0]
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
