"""Edge-weighted aggregation on CPU: DGL's ``u_mul_e_sum`` against ``dglcleaner``'s CSR op.

Times, on one batch of ``--graphs`` graphs of a dataset with at least ``--min-nodes`` nodes
(the graphs GTA poisons), with 64 random features and random edge weights:

* the bare op forward, and forward plus backward to features and weights;
* the GIN, GCN, GraphSAGE and GAT layers of ``dglcleaner.models`` (64 -> 64) forward plus
  backward with edge weights, against the same layer switched to DGL's class (same
  parameters). GAT's attention is an edge weight even without ``edge_weight``, so its row
  also stands for unweighted GAT training.

Each timing is the minimum over ``--repeats`` runs (another job may share the machine; the
load average is printed). The values are checked on the way (the op's forward equals DGL's).
COLLAB is the dense case (about 2,500 edges per graph); the synthetic data needs no files.

    DGLCLEANER_DATA_DIR=../shared/datasets python benchmarks/weighted_aggregation.py
    python benchmarks/weighted_aggregation.py --dataset synthetic --out /tmp/wa.md
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable, List

import torch

from _common import machine, machine_md

from dglcleaner._dgl import dgl
from dgl.nn import GATConv, GINConv, GraphConv, SAGEConv
from dglcleaner.data import load_dataset
from dglcleaner.data.synthetic import make_synthetic
from dglcleaner.models.gat import _GATConv
from dglcleaner.models.gcn import _GraphConv
from dglcleaner.models.gin import _GINConv
from dglcleaner.models.sage import _SAGEConv
from dglcleaner.models.weighted_sum import u_mul_e_sum


def best_of(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: graph formats are built on first use
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000.0


def batch_of(name: str, data_dir, count: int, min_nodes: int):
    ds = make_synthetic() if name == "synthetic" else load_dataset(name, data_dir,
                                                                   download=False)
    graphs = [g for g in ds.graphs if g.num_nodes() >= min_nodes][:count]
    if not graphs:
        raise SystemExit(f"{name} has no graph with at least {min_nodes} nodes")
    return dgl.batch([dgl.graph(g.edges(), num_nodes=g.num_nodes()) for g in graphs]), \
        len(graphs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="COLLAB")
    ap.add_argument("--data-dir", default=os.environ.get("DGLCLEANER_DATA_DIR"))
    ap.add_argument("--graphs", type=int, default=200)
    ap.add_argument("--min-nodes", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bg, count = batch_of(args.dataset, args.data_dir, args.graphs, args.min_nodes)
    x = torch.randn(bg.num_nodes(), 64, requires_grad=True)
    w = torch.rand(bg.num_edges(), requires_grad=True)
    # DGL's values up to float rounding (bitwise where MKL runs without fused multiply-adds)
    torch.testing.assert_close(u_mul_e_sum(bg, x, w), dgl.ops.u_mul_e_sum(bg, x, w),
                               rtol=1e-5, atol=1e-6)

    def op_fwd(op):
        return lambda: op(bg, x.detach(), w.detach())

    def op_both(op):
        return lambda: torch.autograd.grad(op(bg, x, w).sum(), (x, w))

    rows: List[tuple] = [
        ("u_mul_e_sum forward", best_of(op_fwd(dgl.ops.u_mul_e_sum), args.repeats),
         best_of(op_fwd(u_mul_e_sum), args.repeats)),
        ("u_mul_e_sum forward + backward", best_of(op_both(dgl.ops.u_mul_e_sum), args.repeats),
         best_of(op_both(u_mul_e_sum), args.repeats)),
    ]
    layers = (
        ("GIN layer (GINConv, sum)", _GINConv(torch.nn.Linear(64, 64), "sum"), GINConv),
        ("GCN layer (GraphConv, norm both)",
         _GraphConv(64, 64, norm="both", allow_zero_in_degree=True), GraphConv),
        ("GraphSAGE layer (SAGEConv, mean)", _SAGEConv(64, 64, "mean"), SAGEConv),
        ("GAT layer (GATConv, 1 head)",
         _GATConv(64, 64, num_heads=1, allow_zero_in_degree=True), GATConv),
    )
    for label, layer, dgl_cls in layers:
        def step(layer=layer):
            return torch.autograd.grad(layer(bg, x, edge_weight=w).sum(), (x, w))
        ours = best_of(step, args.repeats)
        own_cls, layer.__class__ = layer.__class__, dgl_cls
        theirs = best_of(step, args.repeats)
        layer.__class__ = own_cls
        rows.append((f"{label} forward + backward", theirs, ours))

    info = machine()
    lines = [f"Measured by `python benchmarks/weighted_aggregation.py --dataset {args.dataset} "
             f"--graphs {args.graphs} --min-nodes {args.min_nodes} --repeats {args.repeats} "
             f"--threads {args.threads}`: one batch of {count} {args.dataset} graphs "
             f"({bg.num_nodes()} nodes, {bg.num_edges()} edges), 64 features, random edge "
             f"weights; milliseconds, minimum of {args.repeats} runs.", "",
             machine_md(info), "",
             "| operation | DGL ms | dglcleaner ms | speed-up |", "|---|---|---|---|"]
    lines += [f"| {name} | {a:.1f} | {b:.1f} | {a / b:.1f}x |" for name, a, b in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
