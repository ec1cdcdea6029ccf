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

from .._dgl import dgl  # the loader must run before dgl.nn is imported
from dgl.nn import GATConv, SumPooling
from dgl.nn.functional import edge_softmax

from .base import GraphClassifier, with_self_loops
from .weighted_sum import fast_path, u_mul_e_sum


class _GATConv(GATConv):
    """DGL's ``GATConv`` whose attention-weighted aggregation on the CPU goes through
    :func:`~dglcleaner.models.weighted_sum.u_mul_e_sum` (the attention coefficients are edge
    weights, so DGL 2.1 always takes its slow ``u_mul_e`` path here). One head, one feature
    tensor, no residual, no returned attention; other configurations take DGL's own forward.
    Same parameters and steps as DGL 2.1's forward (attention logits, edge softmax, attention
    dropout, then the optional ``edge_weight`` scaling).
    """

    def forward(self, graph, feat, edge_weight=None, get_attention=False):
        if (get_attention or self._num_heads != 1 or isinstance(feat, tuple) or graph.is_block
                or self.res_fc is not None or not self._allow_zero_in_degree
                or not fast_path(graph, feat,
                                 None if edge_weight is None else edge_weight.reshape(-1))):
            return super().forward(graph, feat, edge_weight=edge_weight,
                                   get_attention=get_attention)
        n, d = feat.shape[0], self._out_feats
        ft = self.fc(self.feat_drop(feat)).view(n, 1, d)
        el = (ft * self.attn_l).sum(dim=-1).unsqueeze(-1)
        er = (ft * self.attn_r).sum(dim=-1).unsqueeze(-1)
        e = self.leaky_relu(dgl.ops.u_add_v(graph, el, er))
        a = self.attn_drop(edge_softmax(graph, e))
        if edge_weight is not None:
            a = a * edge_weight.reshape(-1, 1, 1)
        rst = u_mul_e_sum(graph, ft.view(n, d), a.reshape(-1)).view(n, 1, d)
        if self.has_explicit_bias:
            rst = rst + self.bias.view(1, 1, d)
        if self.activation:
            rst = self.activation(rst)
        return rst


class GAT(GraphClassifier):
    """GAT with one attention head per layer and sum readout."""

    arch = "gat"
    default_layers = 3

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64,
                 num_layers: Optional[int] = None, dropout: float = 0.5) -> None:
        super().__init__(in_dim, num_classes, hidden, num_layers, dropout)
        self.convs = nn.ModuleList(
            _GATConv(self.in_dim if i == 0 else hidden, hidden, num_heads=1,
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
