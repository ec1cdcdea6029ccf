"""Structural edits on single DGL graphs, shared by the trigger-based attacks and defenses.

Graphs are undirected, stored with both directions, without self loops or duplicate edges.
Every function returns a **new** graph and never mutates its input; node data other than
``feat`` are carried over (the caller recomputes ``feat`` with ``featurizer.refresh``).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import networkx as nx
import numpy as np
import torch

from ._dgl import dgl


def undirected_pairs(g: "dgl.DGLGraph") -> Tuple[np.ndarray, np.ndarray]:
    """Each undirected edge once, as ``(u, v)`` with ``u < v``."""
    src, dst = (t.cpu().numpy() for t in g.edges())
    keep = src < dst
    return src[keep], dst[keep]


def from_pairs(num_nodes: int, u: np.ndarray, v: np.ndarray, like: "dgl.DGLGraph",
               clone: bool = False) -> "dgl.DGLGraph":
    """Build a bidirected graph from unique undirected pairs, with ``like``'s node data except
    ``feat`` (shared tensors; cloned with ``clone``)."""
    u = torch.as_tensor(np.asarray(u), dtype=torch.int64)
    v = torch.as_tensor(np.asarray(v), dtype=torch.int64)
    g = dgl.graph((torch.cat([u, v]), torch.cat([v, u])), num_nodes=num_nodes,
                  idtype=like.idtype, device=like.device)
    for key, value in like.ndata.items():
        if key != "feat" and value.shape[0] == num_nodes:
            g.ndata[key] = value.clone() if clone else value
    return g


def replace_subgraph(g: "dgl.DGLGraph", nodes: Sequence[int],
                     trigger_edges: Sequence[Tuple[int, int]]) -> "dgl.DGLGraph":
    """Sub-BA's injection: delete every edge among ``nodes`` and add the trigger's edges on them.

    ``trigger_edges`` index into ``nodes`` (edge ``(a, b)`` connects ``nodes[a]`` and
    ``nodes[b]``). The node count is unchanged.
    """
    nodes = np.asarray(nodes, dtype=np.int64)
    u, v = undirected_pairs(g)
    inside = np.zeros(g.num_nodes(), dtype=bool)
    inside[nodes] = True
    keep = ~(inside[u] & inside[v])
    if len(trigger_edges):
        te = np.asarray(trigger_edges, dtype=np.int64).reshape(-1, 2)
        tu, tv = nodes[te[:, 0]], nodes[te[:, 1]]
        tu, tv = np.minimum(tu, tv), np.maximum(tu, tv)
        ok = tu != tv
        tu, tv = tu[ok], tv[ok]
    else:
        tu = tv = np.empty(0, dtype=np.int64)
    nu = np.concatenate([u[keep], tu])
    nv = np.concatenate([v[keep], tv])
    if len(nu):
        pairs = np.unique(np.stack([nu, nv], 1), axis=0)
        nu, nv = pairs[:, 0], pairs[:, 1]
    return from_pairs(g.num_nodes(), nu, nv, g)


def random_trigger_graph(kind: str, size: int, density: float, seed: int,
                         k: int = 2) -> nx.Graph:
    """The Sub-BA trigger generators: ``er`` (Erdos-Renyi(size, density)), ``ws``
    (Watts-Strogatz(size, k, density)) or ``ba`` (Barabasi-Albert(size, k))."""
    if kind == "er":
        return nx.erdos_renyi_graph(size, density, seed=seed)
    if kind == "ws":
        return nx.watts_strogatz_graph(size, min(k, size - 1), density, seed=seed)
    if kind == "ba":
        return nx.barabasi_albert_graph(size, min(k, size - 1), seed=seed)
    raise ValueError(f"unknown trigger generator {kind!r}; valid: er, ws, ba")


def trigger_edges_for(n_nodes: int, edges: Sequence[Tuple[int, int]], size: int
                      ) -> Sequence[Tuple[int, int]]:
    """Trigger edges restricted to a graph with fewer nodes than the trigger (the induced
    subgraph on the trigger's first ``n_nodes`` nodes)."""
    if n_nodes >= size:
        return edges
    return [(a, b) for a, b in edges if a < n_nodes and b < n_nodes]


def choose_nodes(num_nodes: int, size: int, rng: np.random.Generator,
                 scores: Optional[np.ndarray] = None, most: bool = True) -> np.ndarray:
    """``size`` distinct nodes: uniformly at random, or the top/bottom-``size`` by ``scores``
    (ties broken by the rng). Graphs with fewer nodes give all of them."""
    size = min(size, num_nodes)
    if scores is None:
        return rng.choice(num_nodes, size=size, replace=False)
    jitter = rng.random(num_nodes) * 1e-9
    order = np.argsort(-(scores + jitter) if most else (scores + jitter), kind="stable")
    return order[:size]
