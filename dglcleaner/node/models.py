"""Victim models of the label-poisoning paper, on ``dgl.nn`` (spec section 4).

Every model is ``model(graph, x) -> logits`` on a graph that already has one self-loop per node
(:meth:`NodeDataset.graph`), like PyG's ``GCNConv`` adds them. ``x`` may be dense or a sparse CSR
tensor: the first (input) projection is a plain matmul, so sparse bag-of-words features cost
little (``GraphConv(d, h)`` equals ``GraphConv(h, h, weight=False)`` applied to ``x @ W``).

Speed: the parameters live in ``dgl.nn`` modules (``GraphConv``, ``APPNPConv``; same init), but
their propagation is computed by :func:`graph_conv` / :func:`appnp_prop` with the normalised
adjacency built once per graph (:func:`~dglcleaner.node.sparse.gcn_norm_op`), and sparse
features are multiplied through a cached CSR transpose (:mod:`dglcleaner.node.sparse`). This is
the same arithmetic as the DGL modules up to floating-point summation order (the degree norms
are folded into the edge values).

Known deviations from the PyG reference: DGL's GAT init (xavier normal, gain sqrt 2); CPGCN's
communities come from k-means on a spectral embedding instead of Node2Vec (see
:func:`community_labels`); GCN-JKNet's LSTM jumping knowledge is DGL's ``JumpingKnowledge``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .._dgl import dgl  # noqa: F401 - must precede dgl.nn
from dgl.nn import APPNPConv, GATConv, GraphConv, JumpingKnowledge

from ..errors import unknown_name
from .sparse import SparseOp, feature_op, gcn_norm_op, spmm

MODELS = ("mlp", "gcn", "gat", "appnp", "gcn-jknet", "cpgcn")
#: Reference defaults (spec 2.3).
DEFAULTS: Dict[str, Any] = {"hidden": 64, "dropout": 0.5, "alpha": 0.3, "k": 10, "heads": 8, "lamb_c": 1.0}


def dropout(h: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, as ``F.dropout``, with the mask drawn as ``rand >= p``.

    Same distribution as ``F.dropout`` (keep with probability ``1 - p``, scale ``1 / (1 - p)``),
    other random draws: torch's CPU ``bernoulli_`` took about 3 ms for a cora_ml hidden layer
    (2810 x 64), ``rand`` about 0.7 ms, and dropout ran on every training epoch.
    """
    if not training or p == 0:
        return h
    if p >= 1:
        return h * 0.0
    return h * ((torch.rand_like(h) >= p).to(h.dtype) * (1.0 / (1.0 - p)))


def _drop(x: Any, p: float, training: bool) -> Any:
    """Dropout; on sparse features only the non-zeros are dropped (returns a :class:`SparseOp`)."""
    if not isinstance(x, SparseOp) and x.layout != torch.strided:
        x = feature_op(x)
    if not training or p == 0:
        return x
    if isinstance(x, SparseOp):
        return x.with_values(dropout(x.mat.values(), p, True))
    return dropout(x, p, True)


def _mm(x: Any, w: torch.Tensor) -> torch.Tensor:
    if isinstance(x, SparseOp):
        return spmm(x, w)
    if x.layout != torch.strided:
        return spmm(feature_op(x), w)
    return x @ w


def graph_conv(conv: GraphConv, g: Any, h: torch.Tensor) -> torch.Tensor:
    """``conv(g, h)`` for a ``GraphConv(norm='both')`` without edge weights, with the cached
    normalised adjacency (same order of weight product and aggregation as DGL)."""
    if conv._norm != "both":
        return conv(g, h)
    a = gcn_norm_op(g)
    w = conv.weight
    if w is not None and conv._in_feats > conv._out_feats:
        rst = spmm(a, h @ w)
    else:
        rst = spmm(a, h)
        if w is not None:
            rst = rst @ w
    if conv.bias is not None:
        rst = rst + conv.bias
    if conv._activation is not None:
        rst = conv._activation(rst)
    return rst


def appnp_prop(prop: APPNPConv, g: Any, h: torch.Tensor) -> torch.Tensor:
    """``prop(g, h)`` for an ``APPNPConv`` without edge dropout, with the cached normalised adjacency."""
    if prop.edge_drop.p > 0 and prop.training:
        return prop(g, h)
    a = gcn_norm_op(g)
    h0 = h
    for _ in range(prop._k):
        h = (1 - prop._alpha) * spmm(a, h) + prop._alpha * h0
    return h


class InputLinear(nn.Module):
    """``x @ W (+ b)`` for dense or sparse-CSR ``x`` (glorot-uniform W, zero bias)."""

    def __init__(self, d: int, out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d, out))
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _mm(x, self.weight)
        return h if self.bias is None else h + self.bias


class MLP(nn.Module):
    """dropout -> Linear(d, h) -> ReLU -> dropout -> Linear(h, C); ignores the graph."""

    def __init__(self, d: int, c: int, hidden: int = 64, dropout: float = 0.5, **_: Any) -> None:
        super().__init__()
        self.lin1, self.lin2, self.dropout = InputLinear(d, hidden), nn.Linear(hidden, c), dropout

    def forward(self, g, x):
        h = F.relu(self.lin1(_drop(x, self.dropout, self.training)))
        return self.lin2(dropout(h, self.dropout, self.training))


class GCN(nn.Module):
    """GraphConv(d, h) -> ReLU -> dropout -> GraphConv(h, C) (no input dropout, as PyG's GCN).

    ``forward = head(trunk)``: the trunk (first layer) has no dropout, so its output in
    evaluation mode is also the next training step's (see :func:`~.training.train_eval`).
    """

    def __init__(self, d: int, c: int, hidden: int = 64, dropout: float = 0.5, **_: Any) -> None:
        super().__init__()
        self.lin1 = InputLinear(d, hidden, bias=False)
        self.conv1 = GraphConv(hidden, hidden, weight=False, bias=True)
        self.conv2 = GraphConv(hidden, c)
        self.dropout = dropout

    def trunk(self, g, x):
        return F.relu(graph_conv(self.conv1, g, self.lin1(x)))

    def head(self, g, h):
        return graph_conv(self.conv2, g, dropout(h, self.dropout, self.training))

    def forward(self, g, x):
        return self.head(g, self.trunk(g, x))


class GAT(nn.Module):
    """dropout -> GATConv(d, h, 8 heads) -> ELU -> dropout -> GATConv(8h, C, 1 head)."""

    def __init__(self, d: int, c: int, hidden: int = 64, dropout: float = 0.5, heads: int = 8, **_: Any) -> None:
        super().__init__()
        self.conv1 = GATConv(d, hidden, heads, attn_drop=dropout, negative_slope=0.2)
        self.conv2 = GATConv(hidden * heads, c, 1, attn_drop=dropout, negative_slope=0.2)
        self.dropout = dropout

    def forward(self, g, x):
        if x.layout != torch.strided:
            x = x.to_dense()
        h = self.conv1(g, dropout(x, self.dropout, self.training)).flatten(1)
        h = dropout(F.elu(h), self.dropout, self.training)
        return self.conv2(g, h).mean(1)


class APPNP(nn.Module):
    """MLP(d -> h -> C) then APPNP propagation (K=10, alpha tuned)."""

    def __init__(self, d: int, c: int, hidden: int = 64, dropout: float = 0.5, alpha: float = 0.3,
                 k: int = 10, **_: Any) -> None:
        super().__init__()
        self.mlp = MLP(d, c, hidden, dropout)
        self.prop = APPNPConv(k, alpha)

    def forward(self, g, x):
        return appnp_prop(self.prop, g, self.mlp(g, x))


class GCNJKNet(nn.Module):
    """GCN(d,16) -> GCN(16,16) -> JK-LSTM -> one propagation -> Linear(16, C).

    Hidden 16 and dropout 0.5 are hard-coded as in the reference (spec A14): tuned values are ignored.
    """

    def __init__(self, d: int, c: int, **_: Any) -> None:
        super().__init__()
        self.lin1 = InputLinear(d, 16, bias=False)
        self.conv1 = GraphConv(16, 16, weight=False, bias=True)
        self.conv2 = GraphConv(16, 16)
        self.jk = JumpingKnowledge("lstm", in_feats=16, num_layers=4)
        self.prop = GraphConv(16, 16, weight=False, bias=False)
        self.out = nn.Linear(16, c)

    def trunk(self, g, x):
        return F.relu(graph_conv(self.conv1, g, self.lin1(x)))

    def head(self, g, h):
        h1 = dropout(h, 0.5, self.training)
        h2 = dropout(F.relu(graph_conv(self.conv2, g, h1)), 0.5, self.training)
        return self.out(graph_conv(self.prop, g, self.jk([h1, h2])))

    def forward(self, g, x):
        return self.head(g, self.trunk(g, x))


class CPGCN(nn.Module):
    """Community-preserving GCN (LafAK paper's defence): two GCN layers, label and cluster heads.

    Training adds ``lamb_c * CE(cluster_logits, clusters)`` over all nodes (see
    :meth:`aux_loss`); ``clusters`` must be set (``community_labels``) before training.
    """

    def __init__(self, d: int, c: int, hidden: int = 64, dropout: float = 0.5, lamb_c: float = 1.0,
                 clusters: Optional[torch.Tensor] = None, **_: Any) -> None:
        super().__init__()
        self.lin1 = InputLinear(d, hidden, bias=False)
        self.conv1 = GraphConv(hidden, hidden, weight=False, bias=True)
        self.conv2 = GraphConv(hidden, hidden)
        self.fc1, self.fc2 = nn.Linear(hidden, c), nn.Linear(hidden, c)
        self.dropout, self.lamb_c = dropout, lamb_c
        self.register_buffer("clusters", clusters if clusters is not None else torch.zeros(0, dtype=torch.long))
        self._cluster_logits = None

    def trunk(self, g, x):
        return F.relu(graph_conv(self.conv1, g, self.lin1(x)))

    def head(self, g, h):
        h = graph_conv(self.conv2, g, dropout(h, self.dropout, self.training))
        self._cluster_logits = self.fc2(h)
        return self.fc1(h)

    def forward(self, g, x):
        return self.head(g, self.trunk(g, x))

    def aux_loss(self) -> torch.Tensor:
        if self.clusters.numel() == 0 or self._cluster_logits is None:
            raise RuntimeError("CPGCN needs community labels: pass clusters=community_labels(...)")
        return self.lamb_c * F.cross_entropy(self._cluster_logits, self.clusters)


_CLASSES = {"mlp": MLP, "gcn": GCN, "gat": GAT, "appnp": APPNP, "gcn-jknet": GCNJKNet, "cpgcn": CPGCN}


def build_model(name: str, in_feats: int, num_classes: int, **hp: Any) -> nn.Module:
    """A fresh victim ``name`` (one of :data:`MODELS`) with hyper-parameters ``hp``."""
    key = name.lower().replace("_", "-")
    if key not in _CLASSES:
        raise unknown_name("node model", name, MODELS)
    return _CLASSES[key](in_feats, num_classes, **hp)


def community_labels(adj, k: int, seed: int = 123, dim: int = 32, iters: int = 50) -> torch.Tensor:
    """Cluster ids for CPGCN: k-means (k-means++ init, seeded) on the top-``dim`` eigenvectors of
    the symmetric normalised adjacency. Deviation: the reference uses Node2Vec embeddings."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh

    a = sp.csr_matrix(adj, dtype=np.float64) + sp.eye(adj.shape[0])
    dinv = 1.0 / np.sqrt(np.asarray(a.sum(1)).ravel())
    a = sp.diags(dinv) @ a @ sp.diags(dinv)
    dim = min(dim, adj.shape[0] - 2)
    _, vecs = eigsh(a, k=dim, which="LA", v0=np.ones(adj.shape[0]))
    z = torch.from_numpy(vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12))
    return kmeans(z, k, seed, iters)


def kmeans(z: torch.Tensor, k: int, seed: int, iters: int = 50) -> torch.Tensor:
    """Plain Lloyd k-means with k-means++ seeding; returns labels (long)."""
    gen = torch.Generator().manual_seed(seed)
    n = z.shape[0]
    centers = [z[torch.randint(n, (1,), generator=gen)].squeeze(0)]
    for _ in range(1, k):
        d2 = torch.cdist(z, torch.stack(centers)).min(1).values ** 2
        centers.append(z[torch.multinomial(d2 / d2.sum(), 1, generator=gen)].squeeze(0))
    c = torch.stack(centers)
    for _ in range(iters):
        lab = torch.cdist(z, c).argmin(1)
        new = torch.stack([z[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(k)])
        if torch.allclose(new, c):
            break
        c = new
    return torch.cdist(z, c).argmin(1)
