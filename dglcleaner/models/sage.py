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


class GraphSAGE(GraphClassifier):
    """GraphSAGE with mean aggregation and mean readout."""

    arch = "sage"
    default_layers = 7

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64,
                 num_layers: Optional[int] = None, dropout: float = 0.5) -> None:
        super().__init__(in_dim, num_classes, hidden, num_layers, dropout)
        self.convs = nn.ModuleList(
            SAGEConv(self.in_dim if i == 0 else hidden, hidden, "mean")
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
