"""Edge-weighted sum aggregation on CPU through torch's CSR kernels.

``out[v] = sum over edges e = (u, v) of w_e * x[u]`` is DGL's ``u_mul_e_sum``. On the CPU build
of DGL 2.1 it is an order of magnitude slower than the unweighted ``copy_u_sum``, and its
backward to the edge weights (a ``u_dot_v``) is slower still. Measured on a batch of 200 COLLAB
graphs (12,376 nodes, 349,186 edges, 64 features, one thread): DGL 50 ms forward and 132 ms
forward plus backward to features and weights; ``torch.sparse.mm`` on DGL's own CSC/CSR index
arrays 12 ms and about 25 ms (``sampled_addmm`` for the weights' gradient). The forward sums each
row's edges in DGL's order, so the values equal DGL's: bitwise with MKL's compatible kernels
(what MKL runs on AMD CPUs, or anywhere with ``MKL_CBWR=COMPATIBLE``), to a fused multiply-add's
rounding with its AVX-512 kernels (Intel CPUs); gradients agree to float rounding. This is where GTA's generator training, GCleaner's trigger recovery and
the mask-based explainers spend their time on dense graphs.

Both directions are written with the same two autograd functions (a weighted sum and a per-edge
dot product, each the other's derivative), so gradients of any order exist, as with DGL's ops
(the differentiable heat maps of GCleaner need second-order gradients).
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch

from .._dgl import dgl

# torch says once per process that CSR tensors are "beta"; the two ops used here are covered by
# this module's tests, so the notice would only puzzle users.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

_Index = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _csr(ptr: torch.Tensor, idx: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    # DGL's index arrays are valid by construction; checking them would cost a pass per call
    return torch.sparse_csr_tensor(ptr, idx, values, (n, n), check_invariants=False)


class _Adjacency:
    """A graph's CSC (rows = destinations) and CSR (rows = sources) index arrays."""

    def __init__(self, graph: "dgl.DGLGraph") -> None:
        self.n = graph.num_nodes()
        self.by_dst = self._index(graph.adj_tensors("csc"))
        self.by_src = self._index(graph.adj_tensors("csr"))

    @staticmethod
    def _index(arrays) -> _Index:
        ptr, idx, eid = arrays
        return ptr, idx, eid.long()

    def rows(self, by_src: bool) -> _Index:
        return self.by_src if by_src else self.by_dst

    def matrix(self, weight: torch.Tensor, by_src: bool) -> torch.Tensor:
        """Sparse CSR matrix with ``weight[e]`` at (dst, src), or at (src, dst) if ``by_src``."""
        ptr, idx, eid = self.rows(by_src)
        return _csr(ptr, idx, weight[eid], self.n)


class _WeightedSum(torch.autograd.Function):
    """``out[v] = sum_{e=(u,v)} w_e x[u]``; with ``by_src`` the edges are read reversed."""

    @staticmethod
    def forward(ctx, x, weight, adj: _Adjacency, by_src: bool):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.adj, ctx.by_src = adj, by_src
        return torch.sparse.mm(adj.matrix(weight, by_src), x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        adj, by_src = ctx.adj, ctx.by_src
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = _WeightedSum.apply(grad, weight, adj, not by_src)
        if ctx.needs_input_grad[1]:
            grad_w = _EdgeDot.apply(x, grad, adj, by_src)
        return grad_x, grad_w, None, None


class _EdgeDot(torch.autograd.Function):
    """``d_e = <x[u], y[v]>`` for each edge ``e = (u, v)`` (reversed with ``by_src``)."""

    @staticmethod
    def forward(ctx, x, y, adj: _Adjacency, by_src: bool):  # type: ignore[override]
        ctx.save_for_backward(x, y)
        ctx.adj, ctx.by_src = adj, by_src
        ptr, idx, eid = adj.rows(by_src)
        pattern = _csr(ptr, idx, torch.zeros(len(eid), dtype=x.dtype), adj.n)
        # row r, column c of the pattern: <y[r], x[c]>, in the pattern's edge order
        values = torch.sparse.sampled_addmm(pattern, y, x.t(), beta=0.0).values()
        out = torch.empty(len(eid), dtype=x.dtype)
        out[eid] = values
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, y = ctx.saved_tensors
        adj, by_src = ctx.adj, ctx.by_src
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:  # x sits at the edges' sources: sum over them reversed
            grad_x = _WeightedSum.apply(y, grad, adj, not by_src)
        if ctx.needs_input_grad[1]:
            grad_y = _WeightedSum.apply(x, grad, adj, by_src)
        return grad_x, grad_y, None, None


def fast_path(graph: "dgl.DGLGraph", feat: torch.Tensor,
              weight: Optional[torch.Tensor] = None) -> bool:
    """Whether :func:`u_mul_e_sum` uses the CSR kernels (CPU, 2-D float features, one weight
    per edge of the same dtype, a graph allowed both sparse formats); elsewhere it is DGL's op.
    Without ``weight`` only the graph and the features are checked (for weights computed
    later, e.g. attention)."""
    if weight is not None and not (weight.device.type == "cpu" and weight.dtype == feat.dtype
                                   and weight.numel() == graph.num_edges()):
        return False
    if not (feat.device.type == "cpu" and feat.dim() == 2
            and feat.dtype in (torch.float32, torch.float64) and graph.num_edges() > 0
            and not graph.is_block and graph.num_nodes() == feat.shape[0]):
        return False
    formats = graph.formats()  # a graph restricted to COO cannot give CSR/CSC arrays
    return {"csr", "csc"} <= set(formats["created"]) | set(formats["not created"])


def u_mul_e_sum(graph: "dgl.DGLGraph", feat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """DGL's ``dgl.ops.u_mul_e_sum(graph, feat, weight)`` with scalar edge weights.

    Example
    -------
    >>> import torch
    >>> from dglcleaner._dgl import dgl
    >>> g = dgl.graph(([0, 1, 2], [1, 2, 1]))
    >>> u_mul_e_sum(g, torch.eye(3), torch.tensor([1.0, 2.0, 3.0]))
    tensor([[0., 0., 0.],
            [1., 0., 3.],
            [0., 2., 0.]])
    """
    w = weight.reshape(-1) if weight.dim() == 2 and weight.shape[1] == 1 else weight
    if w.dim() != 1 or not fast_path(graph, feat, w):
        return dgl.ops.u_mul_e_sum(graph, feat, weight)
    return _WeightedSum.apply(feat, w, _Adjacency(graph), False)


__all__ = ["u_mul_e_sum", "fast_path"]
