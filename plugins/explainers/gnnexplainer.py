"""GNNExplainer on DGL, with per-node importance derived from the learned edge mask.

Paper: Ying, Bourgeois, You, Zitnik, Leskovec, "GNNExplainer: Generating Explanations for Graph
Neural Networks", NeurIPS 2019. Implementation: ``dgl.nn.GNNExplainer.explain_graph`` (DGL 2.1).
Threat model: white box (gradients of the model with respect to masks).

DGL's ``explain_graph`` learns a feature mask ``(D,)`` and an edge mask ``(E,)`` for **graph 0 of
a batch only**, and has no node mask. The node importance here is the edge mask aggregated per
node (spec item 12): ``sum`` (default) = half the mask summed over a node's in- and out-edges,
i.e. for our bidirected graphs the sum over its undirected incident edges of the mean of the two
directions; ``mean`` divides by the degree, ``log_degree`` by ``log(degree + 1)`` (XGBD). The
feature mask is shared by all nodes, so it carries no per-node information and is not used.

Two engines give the same explanation:

* ``batched`` (default): the objective and optimiser of DGL's ``explain_graph`` (Adam on
  ``sigmoid``-ed masks, ``-log p(target)`` plus DGL's size and entropy regularisers with its
  coefficients and initialisation), optimised for every graph of the batch at once with one
  feature mask and one edge-mask segment per graph. Graphs are independent in eval mode and
  Adam is element-wise, so each graph's masks follow exactly the trajectory DGL's per-graph run
  would (checked against DGL in ``tests/plugins/test_explainers.py``), about 50x faster.
* ``dgl``: calls DGL's ``GNNExplainer.explain_graph`` graph by graph. It explains the model's
  prediction only (``target`` must be ``None`` or equal the prediction).

Parameters
----------
epochs : int, default 100, in [1, 10000]      (DGL default)
lr : float, default 0.01, in (0, 10]          (DGL default)
alpha1, alpha2, beta1, beta2 : float, defaults 0.005, 1.0, 1.0, 0.1 (DGL's regularisers)
aggregate : str, default "sum", one of sum, mean, log_degree
engine : str, default "batched", one of batched, dgl
seed : int, default 0 (mask initialisation; per graph, from ``seed`` and a hash of the graph)

Known deviations: ``target`` other than the prediction is supported (batched engine) because
GCleaner explains the true label (its Sec. 4.3, ``M_i = Exp(G_i, y_i)``); DGL always explains the
prediction. Graphs without edges get all-zero importance (DGL's loss is NaN there).

Example
-------
>>> GNNExplainerPlugin(epochs=50).engine
'batched'
"""
from __future__ import annotations

from math import sqrt

import torch
from torch import nn

from dglcleaner.errors import ParameterError
from dglcleaner.params import Param

from ._common import (AGGREGATES, ExplainerBase, edge_graph_ids, edge_mask_to_nodes,
                      graph_seed, node_graph_ids, num_conv_layers, seeded, segment_mean,
                      unbatch_with_feat)

_EPS = 1e-15  # DGL's epsilon in the entropy terms


class GNNExplainerPlugin(ExplainerBase):
    """GNNExplainer edge mask -> node importance (see module docstring)."""

    name = "gnnexplainer"
    summary = "DGL's GNNExplainer; node score = incident edge-mask sum."
    paper = ("Ying et al. GNNExplainer: Generating Explanations for Graph Neural Networks. "
             "NeurIPS 2019. https://arxiv.org/abs/1903.03894")
    params = (
        Param("epochs", int, 100, "mask optimisation steps", low=1, high=10000),
        Param("lr", float, 0.01, "Adam learning rate", low=0.0, high=10.0, low_open=True),
        Param("alpha1", float, 0.005, "edge-mask size penalty", low=0.0),
        Param("alpha2", float, 1.0, "edge-mask entropy penalty", low=0.0),
        Param("beta1", float, 1.0, "feature-mask size penalty", low=0.0),
        Param("beta2", float, 0.1, "feature-mask entropy penalty", low=0.0),
        Param("aggregate", str, "sum", "edge mask -> node score", choices=AGGREGATES),
        Param("engine", str, "batched", "batched re-implementation or DGL per graph",
              choices=("batched", "dgl")),
        Param("seed", int, 0, "mask initialisation seed", low=0),
    )

    # ---------------------------------------------------------------------------------------
    def _explain(self, model, graph, feat, target):
        if self.engine == "dgl":
            return self._explain_dgl(model, graph, feat, target)
        return edge_mask_to_nodes(graph, self.edge_masks(model, graph, feat, target),
                                  self.aggregate)

    def _init_masks(self, graph, feat):
        """DGL's ``_init_masks`` per graph, each from its own seeded generator."""
        feat_masks, edge_masks = [], []
        for g, f in unbatch_with_feat(graph, feat):
            gen = torch.Generator().manual_seed(graph_seed(self.seed, g, f, self.name))
            feat_masks.append(torch.randn(1, f.shape[1], generator=gen) * 0.1)
            std = nn.init.calculate_gain("relu") * sqrt(2.0 / (2 * max(g.num_nodes(), 1)))
            edge_masks.append(torch.randn(g.num_edges(), generator=gen) * std)
        return (torch.cat(feat_masks).to(feat.device), torch.cat(edge_masks).to(feat.device))

    def edge_masks(self, model, graph, feat, target) -> torch.Tensor:
        """Learned edge mask (after sigmoid) of every edge of the batch (model frozen)."""
        b = graph.batch_size
        fm0, em0 = self._init_masks(graph, feat)
        feat_mask = nn.Parameter(fm0)
        edge_mask = nn.Parameter(em0)
        nid, eid = node_graph_ids(graph), edge_graph_ids(graph)
        has_edges = (graph.batch_num_edges() > 0).to(feat.device)
        opt = torch.optim.Adam([feat_mask, edge_mask], lr=self.lr)
        rows = torch.arange(b, device=feat.device)
        for _ in range(self.epochs):
            opt.zero_grad()
            h = feat * feat_mask.sigmoid()[nid]
            logits = model(graph, h, eweight=edge_mask.sigmoid())
            pred_loss = -logits.log_softmax(dim=-1)[rows, target]
            loss = pred_loss.sum() + self._regularizers(feat_mask, edge_mask, eid, b, has_edges)
            loss.backward()
            opt.step()
        return edge_mask.detach().sigmoid()

    def _regularizers(self, feat_mask, edge_mask, eid, b, has_edges):
        """DGL's ``_loss_regularize`` summed over graphs (each graph's own sums and means)."""
        em = edge_mask.sigmoid()
        ent_e = -em * torch.log(em + _EPS) - (1 - em) * torch.log(1 - em + _EPS)
        size_e = torch.zeros(b, dtype=em.dtype, device=em.device).index_add_(0, eid, em)
        edge_terms = self.alpha1 * size_e + self.alpha2 * segment_mean(ent_e, eid, b)
        fm = feat_mask.sigmoid()
        ent_f = -fm * torch.log(fm + _EPS) - (1 - fm) * torch.log(1 - fm + _EPS)
        feat_terms = self.beta1 * fm.mean(dim=1) + self.beta2 * ent_f.mean(dim=1)
        return (edge_terms * has_edges).sum() + feat_terms.sum()

    # ---------------------------------------------------------------------------------------
    def _explain_dgl(self, model, graph, feat, target):
        from dgl.nn.pytorch.explain import GNNExplainer

        with torch.no_grad():
            pred = model(graph, feat).argmax(dim=-1)
        if not torch.equal(pred, target):
            raise ParameterError(
                "gnnexplainer engine=dgl explains the model's prediction only; pass target=None "
                "or use engine=batched for another target class")
        explainer = GNNExplainer(model, num_hops=num_conv_layers(model), lr=self.lr,
                                 num_epochs=self.epochs, alpha1=self.alpha1,
                                 alpha2=self.alpha2, beta1=self.beta1, beta2=self.beta2,
                                 log=False)
        out = []
        for g, f in unbatch_with_feat(graph, feat):
            if g.num_edges() == 0:
                out.append(torch.zeros(g.num_nodes(), device=feat.device))
                continue
            with seeded(graph_seed(self.seed, g, f, self.name), feat.device):
                _, edge_mask = explainer.explain_graph(g, f)
            out.append(edge_mask_to_nodes(g, edge_mask, self.aggregate))
        return torch.cat(out)
