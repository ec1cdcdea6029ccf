"""GCN graph classifier (Kipf & Welling, ICLR 2017) as used in GCleaner's model comparison.

3 GraphConv layers (symmetric normalisation, self loops added inside), each followed by row-wise
L2 normalisation and ReLU; sum readout; linear head with dropout.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._dgl import dgl  # noqa: F401 - the loader must run before dgl.nn is imported
from dgl.nn import GraphConv, SumPooling

from .base import GraphClassifier, with_self_loops
from .weighted_sum import fast_path, u_mul_e_sum


class _GraphConv(GraphConv):
    """DGL's ``GraphConv`` whose edge-weighted aggregation on the CPU goes through
    :func:`~dglcleaner.models.weighted_sum.u_mul_e_sum` (DGL's ``u_mul_e`` + ``sum`` there is
    several times slower). Same parameters and the same steps as DGL 2.1's forward (degree
    normalisation by unweighted degrees, projection before aggregation when the input is wider
    than the output); unweighted calls, blocks, pairs of features and external weights take
    DGL's own path.
    """

    def forward(self, graph, feat, weight=None, edge_weight=None):
        if (edge_weight is None or weight is not None or isinstance(feat, tuple)
                or graph.is_block or not self._allow_zero_in_degree
                or not fast_path(graph, feat, edge_weight.reshape(-1))):
            return super().forward(graph, feat, weight=weight, edge_weight=edge_weight)
        h = feat
        if self._norm in ("left", "both"):
            degs = graph.out_degrees().to(h).clamp(min=1)
            h = h * (degs.pow(-0.5) if self._norm == "both" else 1.0 / degs).unsqueeze(-1)
        if self._in_feats > self._out_feats:
            rst = u_mul_e_sum(graph, h @ self.weight if self.weight is not None else h,
                              edge_weight)
        else:
            rst = u_mul_e_sum(graph, h, edge_weight)
            if self.weight is not None:
                rst = rst @ self.weight
        if self._norm in ("right", "both"):
            degs = graph.in_degrees().to(rst).clamp(min=1)
            rst = rst * (degs.pow(-0.5) if self._norm == "both" else 1.0 / degs).unsqueeze(-1)
        if self.bias is not None:
            rst = rst + self.bias
        if self._activation is not None:
            rst = self._activation(rst)
        return rst


class GCN(GraphClassifier):
    """GCN with sum readout; see module docstring."""

    arch = "gcn"
    default_layers = 3

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64,
                 num_layers: Optional[int] = None, dropout: float = 0.5) -> None:
        super().__init__(in_dim, num_classes, hidden, num_layers, dropout)
        self.convs = nn.ModuleList(
            _GraphConv(self.in_dim if i == 0 else hidden, hidden, norm="both",
                       allow_zero_in_degree=True)
            for i in range(self.num_layers)
        )
        self.pool = SumPooling()
        self.fc = nn.Linear(hidden, self.num_classes)

    def _convolve(self, g, feat, edge_weight) -> List[torch.Tensor]:
        g, edge_weight = with_self_loops(g, edge_weight)
        h, out = feat, []
        for conv in self.convs:
            h = F.relu(F.normalize(conv(g, h, edge_weight=edge_weight), p=2, dim=1))
            out.append(h)
        return out
