"""Training speed: seconds per epoch of ``dglcleaner.training.train_model`` on CPU.

Times GIN (the default model: 5 layers, hidden 64, batch 64, Adam lr 0.005) and, with fewer
epochs, GCN/GAT/SAGE on AIDS (``$DGLCLEANER_DATA_DIR`` or ``--data-dir``; skipped when missing)
and on the synthetic dataset, with the featurisation of the experiment runner
(``SeedRun._prepare``: seeded 80/3 % split, ``degree_onehot`` fitted on the training split).
Each timing runs ``--repeats`` times (default 3); the minimum is reported because another job may
share the machine (the load average is printed on every row; CPU time is printed next to wall
time as it suffers less from other processes). ``--reference`` also times the code before the
speed-ups (DGL's ``GINConv.forward``, per-parameter Adam) in the same
process, for a before/after comparison.
``--profile`` prints a cProfile and a torch.profiler top list for GIN on the first dataset.

    DGLCLEANER_DATA_DIR=/work/shared/datasets python benchmarks/training_speed.py --reference
    python benchmarks/training_speed.py --datasets AIDS --models gin --threads 1 --profile
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from _common import machine, machine_md

from dglcleaner import training
from dglcleaner._dgl import dgl  # noqa: F401 - the loader must run before dgl.nn
from dgl.nn import GINConv
from dglcleaner.data import load_dataset, make_featurizer, split_dataset
from dglcleaner.errors import DataError
from dglcleaner.models import build_model
from dglcleaner.seeding import derive_seed, seed_everything
from dglcleaner.training import TrainConfig, train_model


def prepare(name: str, data_dir: Optional[str], seed: int = 0):
    """Training graphs and labels exactly as ``SeedRun._prepare`` builds them (default config)."""
    ds = load_dataset(name, data_dir, download=False)
    split = split_dataset(len(ds), train_ratio=0.8, holding_ratio=0.03,
                          seed=derive_seed(seed, "split"))
    featurizer = make_featurizer("degree_onehot", ds, split.train_idx)
    idx = split.train_idx.tolist()
    graphs = featurizer.apply([ds.graphs[i] for i in idx])
    return graphs, ds.labels[idx].clone(), featurizer.dim, ds.num_classes


def reference_optimizer(model, cfg):
    """The optimizer before the speed-up: PyTorch's default (per-parameter loop on CPU)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


@contextmanager
def variant(which: str) -> Iterator[None]:
    """``reference``: the training code before the speed-ups (the optimizer here; the GIN conv
    is swapped in :func:`time_training`); ``new``: the code as it is."""
    saved = training.make_optimizer
    if which == "reference":
        training.make_optimizer = reference_optimizer
    try:
        yield
    finally:
        training.make_optimizer = saved


def time_training(arch: str, graphs, labels, in_dim: int, num_classes: int, epochs: int,
                  repeats: int, which: str = "new") -> Tuple[float, float, int]:
    """Minimum wall and CPU seconds of ``train_model`` over ``repeats`` runs, steps per run."""
    steps = epochs * -(-len(graphs) // TrainConfig().batch_size)
    wall = cpu = float("inf")
    for _ in range(repeats):
        seed_everything(0)
        model = build_model(arch, in_dim, num_classes)
        if which == "reference":
            for conv in getattr(model, "convs", []):
                if isinstance(conv, GINConv):
                    conv.__class__ = GINConv  # DGL's own forward
        with variant(which):
            t0, c0 = time.perf_counter(), time.process_time()
            train_model(model, graphs, labels, TrainConfig(epochs=epochs), seed=0,
                        device=torch.device("cpu"))
            wall = min(wall, time.perf_counter() - t0)
            cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, steps


def _gin(in_dim: int, num_classes: int, which: str):
    seed_everything(0)
    model = build_model("gin", in_dim, num_classes)
    if which == "reference":
        for conv in model.convs:
            conv.__class__ = GINConv
    return model


def profile_gin(graphs, labels, in_dim: int, num_classes: int, epochs: int, top: int,
                which: str = "new") -> None:
    print(f"\n# Profiles of the {which} code")
    cfg = TrainConfig(epochs=epochs)
    with variant(which):
        model = _gin(in_dim, num_classes, which)
        train_model(model, graphs, labels, TrainConfig(epochs=1), seed=0)  # warm caches first
        prof = cProfile.Profile()
        prof.enable()
        train_model(model, graphs, labels, cfg, seed=0)
        prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    print(f"\n## cProfile, GIN, {epochs} epochs, top {top} by own time\n")
    print("```\n" + buf.getvalue().strip() + "\n```")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    print(f"\n## cProfile, top {top} by cumulative time\n")
    print("```\n" + buf.getvalue().strip() + "\n```")

    with variant(which), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as tp:
        train_model(_gin(in_dim, num_classes, which), graphs, labels, TrainConfig(epochs=1),
                    seed=0)
    print(f"\n## torch.profiler, GIN, 1 epoch, top {top} by self CPU time\n")
    print("```\n" + tp.key_averages().table(sort_by="self_cpu_time_total", row_limit=top) + "\n```")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="AIDS,synthetic")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--models", default="gin,gcn,gat,sage")
    ap.add_argument("--gin-epochs", type=int, default=5)
    ap.add_argument("--other-epochs", type=int, default=2)
    ap.add_argument("--threads", default="1,2", help="torch thread counts to time")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference", action="store_true",
                    help="also time the code before the speed-ups (DGL's "
                         "GINConv forward, per-parameter Adam), in the same process")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-code", default="new", choices=["new", "reference", "both"])
    ap.add_argument("--profile-epochs", type=int, default=3)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)

    data: Dict[str, tuple] = {}
    for name in [s for s in args.datasets.split(",") if s]:
        try:
            data[name] = prepare(name, args.data_dir)
        except DataError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
    variants = ["reference", "new"] if args.reference else ["new"]
    for graphs, labels, in_dim, num_classes in data.values():  # warm-up: imports, allocator
        train_model(build_model("gin", in_dim, num_classes), graphs, labels,
                    TrainConfig(epochs=1), seed=0)
    rows: List[str] = []
    for threads in [int(t) for t in args.threads.split(",") if t]:
        torch.set_num_threads(threads)
        for name, (graphs, labels, in_dim, num_classes) in data.items():
            for arch in [m for m in args.models.split(",") if m]:
                epochs = args.gin_epochs if arch == "gin" else args.other_epochs
                for which in variants:
                    wall, cpu, steps = time_training(arch, graphs, labels, in_dim, num_classes,
                                                     epochs, args.repeats, which)
                    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                    rows.append(f"| {name} | {len(graphs)} | {arch} | {threads} | {which} | "
                                f"{epochs} | {wall / epochs:.3f} | {cpu / epochs:.3f} | "
                                f"{steps / wall:.1f} | {load} |")
                    print(rows[-1], flush=True)
    print("\n# Training speed (min of %d runs)\n" % args.repeats)
    print("| dataset | train graphs | model | threads | code | epochs | s/epoch (wall) "
          "| s/epoch (CPU) | steps/s (wall) | load avg 1/5/15 min |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.profile and data:
        torch.set_num_threads(1)
        graphs, labels, in_dim, num_classes = next(iter(data.values()))
        for which in (["reference", "new"] if args.profile_code == "both"
                      else [args.profile_code]):
            profile_gin(graphs, labels, in_dim, num_classes, args.profile_epochs, args.top,
                        which)
    print("\n" + machine_md(machine()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
