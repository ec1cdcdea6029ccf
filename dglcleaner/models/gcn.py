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


class GCN(GraphClassifier):
    """GCN with sum readout; see module docstring."""

    arch = "gcn"
    default_layers = 3

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64,
                 num_layers: Optional[int] = None, dropout: float = 0.5) -> None:
        super().__init__(in_dim, num_classes, hidden, num_layers, dropout)
        self.convs = nn.ModuleList(
            GraphConv(self.in_dim if i == 0 else hidden, hidden, norm="both",
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
