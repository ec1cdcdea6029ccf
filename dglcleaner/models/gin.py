"""GIN graph classifier (Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019).

The variant used by GCleaner and XGBD: 5 GINConv layers, each with a 2-layer MLP followed by
ReLU and BatchNorm, sum readout of the last layer, then ``fc1`` (hidden, ReLU), dropout and
``fc2``. Unlike the official GIN, edge weights are honoured (weighted sum aggregation).
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._dgl import dgl  # the loader must run before dgl.nn is imported
from dgl.nn import GINConv, SumPooling

from .base import GraphClassifier
from .weighted_sum import u_mul_e_sum


class _GINConv(GINConv):
    """DGL's ``GINConv`` (sum aggregator) with a shorter forward; same parameters, same function.

    ``GINConv.forward`` goes through ``local_scope``/``update_all``, which end in the same
    ``copy_u_sum``/``u_mul_e_sum`` kernels called here directly, and multiplies the input by
    ``1 + eps`` although ``eps`` is a zero buffer (``x * 1.0`` is exactly ``x``, forward and
    backward, so skipping it changes no bit). Inputs wider than the MLP's first layer are
    projected by its weight before aggregation (the same function, about in_dim/hidden times
    fewer aggregation flops; floating-point results differ in the last bits). Inputs no wider
    than that give bitwise DGL's numbers. Edge-weighted sums on the CPU use
    :func:`~dglcleaner.models.weighted_sum.u_mul_e_sum` (torch's CSR kernels; DGL's values,
    several times faster). Blocks, pairs of features, a non-zero or learnt ``eps`` and other
    aggregators take DGL's own path.
    """

    def forward(self, graph, feat, edge_weight=None):
        if (self._aggregator_type != "sum" or isinstance(feat, tuple) or graph.is_block
                or isinstance(self.eps, nn.Parameter)):
            return super().forward(graph, feat, edge_weight)
        apply_func = self.apply_func
        bias = None
        first = apply_func[0] if isinstance(apply_func, nn.Sequential) else None
        if isinstance(first, nn.Linear) and feat.shape[-1] > first.out_features:
            # Wide inputs (e.g. COLLAB's ~500-wide degree one-hot): W(x + sum_j w_j x_j) =
            # Wx + sum_j w_j (W x_j), so project before aggregating, as DGL's GraphConv does
            # when in_feats > out_feats. Same function; floating-point sums in another order.
            feat, bias, apply_func = F.linear(feat, first.weight), first.bias, apply_func[1:]
        if edge_weight is None:
            neigh = dgl.ops.copy_u_sum(graph, feat)
        else:
            assert edge_weight.shape[0] == graph.num_edges()
            neigh = u_mul_e_sum(graph, feat, edge_weight)  # DGL's on CPU is ~10x slower
        if feat.device.type == "cpu" and not bool(self.eps.any()):
            rst = feat + neigh  # eps == 0 (checked each call: load_state_dict may change it)
        else:  # off the CPU the check would cost a device sync; multiply as DGL does
            rst = (1 + self.eps) * feat + neigh
        if bias is not None:
            rst = rst + bias
        if apply_func is not None:
            rst = apply_func(rst)
        if self.activation is not None:
            rst = self.activation(rst)
        return rst


class GIN(GraphClassifier):
    """GIN with sum readout; see module docstring.

    Example
    -------
    >>> import torch
    >>> from dglcleaner._dgl import dgl
    >>> g = dgl.graph(([0, 1, 1, 2], [1, 0, 2, 1]))
    >>> model = GIN(in_dim=4, num_classes=2)
    >>> model.eval()(g, torch.ones(3, 4)).shape
    torch.Size([1, 2])
    """

    arch = "gin"
    default_layers = 5

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64,
                 num_layers: Optional[int] = None, dropout: float = 0.5) -> None:
        super().__init__(in_dim, num_classes, hidden, num_layers, dropout)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(self.num_layers):
            d_in = self.in_dim if i == 0 else hidden
            mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
            self.convs.append(_GINConv(mlp, aggregator_type="sum"))
            self.norms.append(nn.BatchNorm1d(hidden))
        self.pool = SumPooling()
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, self.num_classes)

    def _convolve(self, g, feat, edge_weight) -> List[torch.Tensor]:
        h, out = feat, []
        for conv, norm in zip(self.convs, self.norms):
            h = norm(F.relu(conv(g, h, edge_weight)))
            out.append(h)
        return out

    def _head(self, hg):
        h = F.relu(self.fc1(hg))
        return self.fc2(F.dropout(h, self.dropout, self.training))
