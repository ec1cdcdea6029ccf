"""The in-memory graph-classification dataset and the shared graph-assembly helpers.

Every reader ends in :func:`assemble_graphs`, which turns flat numpy arrays (global node ids,
per-node graph ids) into per-graph DGL graphs with one convention: int64 ids, each undirected
edge stored in both directions, no self-loops, no duplicate edges.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from dglcleaner._dgl import dgl



@dataclass
class GraphDataset:
    """A list of graphs with one integer label each.

    ``graphs`` hold ``ndata['node_label']`` (LongTensor, original values) and/or
    ``ndata['attr']`` (FloatTensor ``[n, d]``) when the source file has them; model input
    features (``ndata['feat']``) are added by a :class:`~dglcleaner.data.features.Featurizer`,
    never here. ``labels`` are remapped to ``0..C-1`` in sorted order of the original values;
    ``label_names[new] = original``.
    """

    name: str
    graphs: list
    labels: torch.Tensor
    num_classes: int
    label_names: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.graphs)

    def subset(self, idx) -> "GraphDataset":
        """The graphs at ``idx`` (same graph objects, no copy); classes and names unchanged."""
        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64)).reshape(-1)
        return GraphDataset(
            name=self.name,
            graphs=[self.graphs[int(i)] for i in idx_t],
            labels=self.labels[idx_t].clone(),
            num_classes=self.num_classes,
            label_names=dict(self.label_names),
        )

    @property
    def avg_nodes(self) -> float:
        """Mean number of nodes per graph (0.0 for an empty dataset)."""
        if not self.graphs:
            return 0.0
        return float(sum(g.num_nodes() for g in self.graphs)) / len(self.graphs)

    def stats(self) -> dict:
        """Counts for reports: graphs, classes, class_counts (list by label), avg nodes/edges.

        ``avg_edges`` counts undirected edges (stored edges / 2).
        """
        n = len(self.graphs)
        counts = torch.bincount(self.labels, minlength=self.num_classes).tolist() if n else []
        edges = sum(g.num_edges() for g in self.graphs) / 2.0
        return {
            "graphs": n,
            "classes": self.num_classes,
            "class_counts": counts,
            "avg_nodes": round(self.avg_nodes, 4),
            "avg_edges": round(edges / n, 4) if n else 0.0,
        }


def remap_labels(raw: Sequence) -> tuple:
    """Map raw labels to ``0..C-1`` in sorted order; returns ``(LongTensor, {new: original})``."""
    arr = np.asarray(raw)
    values, inverse = np.unique(arr, return_inverse=True)
    names = {i: (v.item() if hasattr(v, "item") else v) for i, v in enumerate(values)}
    return torch.from_numpy(inverse.astype(np.int64).reshape(-1)), names


def select_graphs(ds: GraphDataset, keep, name: Optional[str] = None) -> GraphDataset:
    """Keep the graphs at ``keep`` and remap their labels to ``0..C'-1`` (classes that no longer
    occur are dropped); ``label_names`` keeps pointing at the original file labels."""
    keep_t = torch.as_tensor(np.asarray(keep, dtype=np.int64)).reshape(-1)
    old = ds.labels[keep_t].numpy()
    new, names = remap_labels(old)
    names = {k: ds.label_names.get(int(v), int(v)) for k, v in names.items()}
    return GraphDataset(
        name=name or ds.name,
        graphs=[ds.graphs[int(i)] for i in keep_t],
        labels=new,
        num_classes=len(names),
        label_names=names,
    )


def assemble_graphs(
    nodes_per_graph: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    node_data: Optional[Dict[str, torch.Tensor]] = None,
) -> List["dgl.DGLGraph"]:
    """Build one DGL graph per entry of ``nodes_per_graph`` from global edges.

    Nodes are numbered globally, graph after graph (graph ``i`` owns ids
    ``offset[i] .. offset[i] + nodes_per_graph[i] - 1``). ``src``/``dst`` are global ids of edges
    within a graph (callers check that no edge crosses graphs); direction, self-loops and
    duplicates are normalised here. ``node_data`` tensors are indexed by global node id and
    sliced per graph.
    """
    nodes_per_graph = np.asarray(nodes_per_graph, dtype=np.int64)
    num_graphs = nodes_per_graph.size
    offsets = np.zeros(num_graphs + 1, dtype=np.int64)
    np.cumsum(nodes_per_graph, out=offsets[1:])
    total = int(offsets[-1])
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    keep = src != dst  # self-loops dropped: GCN/GAT layers add their own
    lo = np.minimum(src[keep], dst[keep])
    hi = np.maximum(src[keep], dst[keep])
    # Sort-based unique (faster here than np.unique/pd.unique on millions of keys); sorted
    # (lo, hi) keys group edges by graph because a graph's node ids are contiguous.
    scale = max(total, 1)
    keys = np.sort(lo * scale + hi)
    if keys.size:
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    lo = keys // scale
    hi = keys - lo * scale
    # keys are sorted by lo, so each graph's edges form one run: find the runs by bisection.
    edge_offsets = np.searchsorted(lo, offsets, side="left")
    lo_t = torch.from_numpy(lo)
    hi_t = torch.from_numpy(hi)
    graphs = []
    for i in range(num_graphs):
        a, b = int(edge_offsets[i]), int(edge_offsets[i + 1])
        off = int(offsets[i])
        u, v = lo_t[a:b] - off, hi_t[a:b] - off
        g = dgl.graph(
            (torch.cat([u, v]), torch.cat([v, u])),
            num_nodes=int(nodes_per_graph[i]),
            idtype=torch.int64,
        )
        if node_data:
            s, e = int(offsets[i]), int(offsets[i + 1])
            for key, val in node_data.items():
                g.ndata[key] = val[s:e].clone()
        graphs.append(g)
    return graphs

