"""PGExplainer on DGL, trained on the graphs it is asked to explain.

Paper: Luo, Cheng, Xu, Yu, Zong, Chen, Zhang, "Parameterized Explainer for Graph Neural
Network", NeurIPS 2020. Implementation: ``dgl.nn.PGExplainer`` (DGL 2.1). Threat model: white
box (node embeddings and gradients of the model).

PGExplainer is an explanation *network* (an MLP on the embeddings of an edge's two endpoints)
that must be trained before it explains anything. Choice made here: every call trains a fresh
explanation network on the batch it is given (``epochs`` passes over the batch, Adam, concrete
relaxation with the temperature annealed geometrically from ``temp_start`` to ``temp_end``, as
in DGL's example and the paper), then explains that batch deterministically (no sampling noise
at explanation time). So the call is stateless and seeded, but a graph's scores depend on the
other graphs of the batch (the shared network is fitted to all of them); callers that want one
explainer for a whole data set pass it as one batch. The embeddings DGL asks for are the model's
last conv layer activations (``model.forward_full``).

Deviation from DGL 2.1: its ``explain_graph(training=True)`` detaches the masked prediction
(``probs.data``), so DGL's ``train_step`` prediction loss has no gradient and only the size and
entropy regularisers train the network. Here the masked prediction is recomputed with gradient
(the paper's objective); the explanation class is ``target`` (default: the prediction, as DGL).

Node importance = the edge mask aggregated per node as for GNNExplainer (``sum``: half the mask
summed over in- and out-edges; ``mean``; ``log_degree``). DGL averages the two directions of an
edge, so every edge needs its reverse: graphs that are not bidirected are refused with one line
(DGL would fail with a misleading ``RuntimeError``).

Parameters
----------
epochs : int, default 30, in [1, 1000]
lr : float, default 0.003, in (0, 1]
temp_start, temp_end : float, defaults 5.0 and 1.0, > 0
coff_budget : float, default 0.01; coff_connect : float, default 5e-4 (DGL defaults)
aggregate : str, default "sum"
seed : int, default 0

Example
-------
>>> PGExplainerPlugin(epochs=10).epochs
10
"""
from __future__ import annotations

import torch
from torch import nn

from dglcleaner.errors import DataError
from dglcleaner.params import Param

from ._common import AGGREGATES, ExplainerBase, edge_mask_to_nodes, full_forward, seeded


class _EmbedModel(nn.Module):
    """The call convention DGL's PGExplainer expects: ``(g, feat, embed, edge_weight)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def forward(self, graph, feat, embed=False, edge_weight=None, **kwargs):
        out = full_forward(self.inner, graph, feat, edge_weight)
        return out.layers[-1] if embed else out.logits


class PGExplainerPlugin(ExplainerBase):
    """DGL's PGExplainer, trained per call on the given batch (see module docstring)."""

    name = "pgexplainer"
    summary = "DGL's PGExplainer, trained on the given batch; node score from the edge mask."
    paper = ("Luo et al. Parameterized Explainer for Graph Neural Network. NeurIPS 2020. "
             "https://arxiv.org/abs/2011.04573")
    params = (
        Param("epochs", int, 30, "training passes over the batch", low=1, high=1000),
        Param("lr", float, 0.003, "Adam learning rate", low=0.0, high=1.0, low_open=True),
        Param("temp_start", float, 5.0, "initial concrete temperature", low=0.0, low_open=True),
        Param("temp_end", float, 1.0, "final concrete temperature", low=0.0, low_open=True),
        Param("coff_budget", float, 0.01, "size regulariser (DGL default)"),
        Param("coff_connect", float, 5e-4, "entropy regulariser (DGL default)", low=0.0),
        Param("aggregate", str, "sum", "edge mask -> node score", choices=AGGREGATES),
        Param("seed", int, 0, "seed of the network initialisation and sampling", low=0),
    )

    def _explain(self, model, graph, feat, target):
        from dgl.nn.pytorch.explain import PGExplainer

        if graph.num_edges() == 0:
            return torch.zeros(graph.num_nodes(), device=feat.device)
        src, dst = graph.edges()
        if not bool(graph.has_edges_between(dst, src).all()):
            raise DataError("pgexplainer needs every edge's reverse edge (a bidirected graph); "
                            "got a graph with one-way edges")
        wrapped = _EmbedModel(model)
        with seeded(self.seed, feat.device), torch.enable_grad():
            dim = wrapped(graph, feat, embed=True).shape[1]
            explainer = PGExplainer(wrapped, num_features=dim, explain_graph=True,
                                    coff_budget=self.coff_budget,
                                    coff_connect=self.coff_connect).to(feat.device)
            opt = torch.optim.Adam(explainer.parameters(), lr=self.lr)
            ratio = self.temp_end / self.temp_start
            for epoch in range(self.epochs):
                temp = self.temp_start * ratio ** (epoch / max(self.epochs - 1, 1))
                loss = self._train_loss(explainer, graph, feat, temp, target)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                _, edge_mask = explainer.explain_graph(graph, feat, training=False)
        return edge_mask_to_nodes(graph, edge_mask, self.aggregate)

    @staticmethod
    def _train_loss(explainer, graph, feat, temp, target):
        """DGL's ``train_step`` objective, with two changes: the prediction term gets its
        gradient back (DGL 2.1's ``explain_graph(training=True)`` returns ``probs.data``, so
        in DGL only the size and entropy regularisers train the network), and the class is
        ``target`` (the prediction by default, as in DGL)."""
        _, edge_mask = explainer.explain_graph(graph, feat, temperature=temp, training=True)
        prob = torch.softmax(explainer.model(graph, feat, edge_weight=edge_mask), dim=-1)
        return explainer.loss(prob, target)
