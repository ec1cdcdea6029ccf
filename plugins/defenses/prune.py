"""Prune: drop edges whose endpoint features are dissimilar, at training and test time.

Paper: the baseline of Dai, Lin, Zhang, Wang, "Unnoticeable Backdoor Attacks on Graph Neural
Networks" (UGBA), WWW 2023; reference code ``ventr1c/UGBA`` @ c1d945a,
``help_funcs.py::prune_unrelated_edge`` (drop edges with cosine similarity <= ``prune_thr``) and
``prune_unrelated_edge_isolated`` (the ``isolate`` variant). GCleaner (Table 3) transfers it to
graph classification: every training graph and every evaluated graph is pruned.

Threat model: training control. The defender trains its own model on the pruned (possibly
poisoned) training graphs and controls test-time inputs (``DefenseResult.transform`` prunes each
evaluated graph the same way).

Algorithm, per graph: cosine similarity of ``ndata['feat']`` at the two ends of every edge;
edges with similarity ``<= threshold`` are removed. ``isolate`` also removes every node incident
to a removed edge (UGBA excludes those nodes from training; a graph classifier can only drop
them from the graph). Node features are then recomputed from the pruned structure
(``featurizer.refresh``; degree one-hot follows the new degrees), unless ``refresh_features``
is false, in which case every kept node keeps its original feature row (UGBA's behaviour: its
raw features do not depend on structure).

Parameters
----------
threshold : float, default 0.1, in [-1, 1]
    Cosine-similarity threshold (UGBA's ``prune_thr``; spec item 18: 0.1).
isolate : bool, default False
    Also drop the nodes incident to pruned edges.
refresh_features : bool, default True
    Recompute node features after pruning (the project-wide rule after a structural edit).

Known deviations and caveats:

* With one-hot features (``degree_onehot``, ``node_label_onehot``) the cosine similarity of two
  nodes is 0 or 1, so any threshold in [0, 1) removes every edge between nodes of different
  degree/label: a warning says so (once per run).
* ``isolate`` never empties a graph: if every node would be dropped, the graph keeps its nodes
  and only loses the dissimilar edges (a graph with no nodes has no prediction).
* Similarity is computed on the input features the model sees, i.e. one-hot degree by default,
  not on AIDS's raw attributes.

Example
-------
>>> Prune(threshold=0.2).threshold
0.2
"""
from __future__ import annotations

import warnings
from typing import Any, List, Sequence, Tuple

import numpy as np
import torch

from dglcleaner.api import DefenseContext, DefenseResult, PluginBase, ThreatModel
from dglcleaner.params import Param

ONE_HOT_WARNING = ("prune: node features are one-hot, so the cosine similarity of two nodes is "
                   "only 0 or 1 and any threshold in [0, 1) removes every edge between nodes "
                   "with different features; use raw attributes for a graded similarity")


def is_one_hot(feats: Sequence[torch.Tensor]) -> bool:
    """True when every row of every tensor holds only 0/1 entries and at most one 1."""
    seen = False
    for f in feats:
        if f.numel() == 0:
            continue
        seen = True
        if not bool(((f == 0) | (f == 1)).all()) or bool((f.sum(dim=1) > 1).any()):
            return False
    return seen


def edge_similarity(g) -> Tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Each undirected edge once as ``(u, v)`` with ``u < v``, and the cosine similarity of its
    endpoints' ``ndata['feat']`` rows (0 where a row is all zeros)."""
    from dglcleaner.graph_ops import undirected_pairs

    u, v = undirected_pairs(g)
    feat = g.ndata["feat"].detach().float().cpu()
    if len(u) == 0:
        return u, v, torch.empty(0)
    ut, vt = torch.as_tensor(u), torch.as_tensor(v)
    sims = torch.nn.functional.cosine_similarity(feat[ut], feat[vt], dim=1)
    return u, v, sims


def prune_graph(g, threshold: float, featurizer: Any, *, isolate: bool = False,
                refresh_features: bool = True):
    """A new graph without the edges whose endpoint similarity is ``<= threshold`` (and, with
    ``isolate``, without their endpoints); ``g`` is not modified."""
    from dglcleaner._dgl import dgl
    from dglcleaner.graph_ops import from_pairs

    n = g.num_nodes()
    u, v, sims = edge_similarity(g)
    bad = (sims <= threshold).numpy() if len(u) else np.zeros(0, dtype=bool)
    new = from_pairs(n, u[~bad], v[~bad], g)
    new.ndata["feat"] = g.ndata["feat"].clone()
    if isolate and bad.any():
        keep = np.ones(n, dtype=bool)
        keep[u[bad]] = False
        keep[v[bad]] = False
        if keep.any():
            ids = torch.as_tensor(np.flatnonzero(keep), dtype=new.idtype, device=new.device)
            new = dgl.node_subgraph(new, ids, store_ids=False)
    if refresh_features:
        del new.ndata["feat"]
        new = featurizer.refresh(new)
    return new


class Prune(PluginBase):
    """Drop dissimilar edges (UGBA's Prune / Prune+Isolate) in training and test graphs."""

    name = "prune"
    kind = "defense"
    task = "graph"
    summary = "Drop edges whose endpoint features have low cosine similarity (train and test)."
    paper = ("Dai, Lin, Zhang, Wang. Unnoticeable Backdoor Attacks on Graph Neural Networks. "
             "WWW 2023 (Prune baseline). https://arxiv.org/abs/2303.01263")
    threat_model = ThreatModel.TRAINING_CONTROL
    params = (
        Param("threshold", float, 0.1, "drop edges with cosine similarity <= threshold",
              low=-1.0, high=1.0),
        Param("isolate", bool, False, "also drop nodes incident to pruned edges"),
        Param("refresh_features", bool, True, "recompute node features after pruning"),
    )
    presets = {"isolate": {"isolate": True}}

    def transform(self, graphs: Sequence, featurizer: Any) -> List:
        """Pruned copies of ``graphs``."""
        return [prune_graph(g, self.threshold, featurizer, isolate=self.isolate,
                            refresh_features=self.refresh_features) for g in graphs]

    def run(self, ctx: DefenseContext) -> DefenseResult:
        graphs = ctx.train_graphs
        if is_one_hot([g.ndata["feat"] for g in graphs[:200]]):
            warnings.warn(ONE_HOT_WARNING, UserWarning, stacklevel=2)
        pruned = self.transform(graphs, ctx.featurizer)
        before = sum(g.num_edges() for g in graphs) // 2
        after = sum(g.num_edges() for g in pruned) // 2
        nodes_before = sum(g.num_nodes() for g in graphs)
        nodes_after = sum(g.num_nodes() for g in pruned)
        model = ctx.train(ctx.build_model(), pruned, ctx.train_labels)
        featurizer = ctx.featurizer
        return DefenseResult(
            model=model,
            transform=lambda gs: self.transform(gs, featurizer),
            info={"train_edges_kept": after / before if before else 1.0,
                  "train_nodes_kept": nodes_after / nodes_before if nodes_before else 1.0},
        )
