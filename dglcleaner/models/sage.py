"""GraphSAGE graph classifier (Hamilton et al., NeurIPS 2017) as used in GCleaner's comparison.

7 SAGEConv layers (mean aggregator) each followed by ReLU and BatchNorm, mean readout, linear
head with dropout. Edge weights scale the aggregated messages.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._dgl import dgl  # noqa: F401 - the loader must run before dgl.nn is imported
from dgl.nn import AvgPooling, SAGEConv

from .base import GraphClassifier
from .weighted_sum import fast_path, u_mul_e_sum


class _SAGEConv(SAGEConv):
    """DGL's ``SAGEConv`` whose edge-weighted mean aggregation on the CPU goes through
    :func:`~dglcleaner.models.weighted_sum.u_mul_e_sum` (weighted sum over the in-degree, as
    DGL's ``fn.mean`` of ``u_mul_e`` messages; 0 for nodes without in-edges). Same parameters
    and steps as DGL 2.1's forward; other aggregators, unweighted calls, blocks and pairs of
    features take DGL's own path.
    """

    def forward(self, graph, feat, edge_weight=None):
        if (edge_weight is None or self._aggre_type != "mean" or isinstance(feat, tuple)
                or graph.is_block or not fast_path(graph, feat, edge_weight.reshape(-1))):
            return super().forward(graph, feat, edge_weight=edge_weight)
        h = self.feat_drop(feat)
        lin_before_mp = self._in_src_feats > self._out_feats
        neigh = u_mul_e_sum(graph, self.fc_neigh(h) if lin_before_mp else h, edge_weight)
        neigh = neigh / graph.in_degrees().to(neigh).clamp(min=1).unsqueeze(-1)
        if not lin_before_mp:
            neigh = self.fc_neigh(neigh)
        rst = self.fc_self(h) + neigh
        if self.activation is not None:
            rst = self.activation(rst)
        if self.norm is not None:
            rst = self.norm(rst)
        return rst


class GraphSAGE(GraphClassifier):
    """GraphSAGE with mean aggregation and mean readout."""

    arch = "sage"
    default_layers = 7

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64,
                 num_layers: Optional[int] = None, dropout: float = 0.5) -> None:
        super().__init__(in_dim, num_classes, hidden, num_layers, dropout)
        self.convs = nn.ModuleList(
            _SAGEConv(self.in_dim if i == 0 else hidden, hidden, "mean")
            for i in range(self.num_layers)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(self.num_layers))
        self.pool = AvgPooling()
        self.fc = nn.Linear(hidden, self.num_classes)

    def _convolve(self, g, feat, edge_weight) -> List[torch.Tensor]:
        h, out = feat, []
        for conv, norm in zip(self.convs, self.norms):
            h = norm(F.relu(conv(g, h, edge_weight=edge_weight)))
            out.append(h)
        return out
