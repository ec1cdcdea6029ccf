"""GAT graph classifier (Velickovic et al., ICLR 2018) as used in GCleaner's model comparison.

3 GATConv layers with one head (self loops added inside), ELU activations, sum readout, linear
head. ``edge_weight`` scales the attention coefficients (DGL's GATConv semantics), so trigger
edges with continuous weights still receive gradients.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._dgl import dgl  # noqa: F401 - the loader must run before dgl.nn is imported
from dgl.nn import GATConv, SumPooling

from .base import GraphClassifier, with_self_loops


class GAT(GraphClassifier):
    """GAT with one attention head per layer and sum readout."""

    arch = "gat"
    default_layers = 3

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64,
                 num_layers: Optional[int] = None, dropout: float = 0.5) -> None:
        super().__init__(in_dim, num_classes, hidden, num_layers, dropout)
        self.convs = nn.ModuleList(
            GATConv(self.in_dim if i == 0 else hidden, hidden, num_heads=1,
                    allow_zero_in_degree=True)
            for i in range(self.num_layers)
        )
        self.pool = SumPooling()
        self.fc = nn.Linear(hidden, self.num_classes)

    def _convolve(self, g, feat, edge_weight) -> List[torch.Tensor]:
        g, edge_weight = with_self_loops(g, edge_weight)
        h, out = feat, []
        for conv in self.convs:
            h = F.elu(conv(g, h, edge_weight=edge_weight).squeeze(1))
            out.append(h)
        return out
