"""Sparse operators with a precomputed transpose, for fast (and twice differentiable) ``A @ H``.

``torch.sparse.mm(csr, h)`` is fast forward, but its backward converts and transposes the
sparse matrix on every call (on cora_ml that was ~70 % of a GCN epoch). :class:`SparseOp` keeps
a CSR matrix and its CSR transpose, built once; :func:`spmm` multiplies by it with a backward
that is itself an :func:`spmm` by the transpose, so ``create_graph=True`` (meta-gradients)
works. :func:`feature_op` and :func:`gcn_norm_op` cache one operator per feature matrix / graph.
"""
from __future__ import annotations

import warnings
import weakref
from typing import Any, Dict, Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch


class SparseOp:
    """A fixed sparse matrix ``mat`` (CSR) with its transpose; ``op @ h`` is :func:`spmm`."""

    def __init__(self, mat: torch.Tensor, t: torch.Tensor, perm: torch.Tensor,
                 transpose_of: Optional["SparseOp"] = None) -> None:
        self.mat = mat  # CSR
        self._t = t  # CSR transpose; t.values() == mat.values()[perm]
        self._perm = perm
        self._transpose = transpose_of

    @classmethod
    def from_scipy(cls, a: sp.spmatrix, dtype: torch.dtype = torch.float32,
                   device: Optional[torch.device] = None) -> "SparseOp":
        a = sp.csr_matrix(a, dtype=np.float64, copy=True)
        a.sum_duplicates()  # canonical: sorted indices, no duplicates
        nnz = a.nnz
        # transpose the positions 1..nnz (exact in float64) to get the value permutation
        pos = sp.csr_matrix((np.arange(1, nnz + 1, dtype=np.float64), a.indices, a.indptr), shape=a.shape)
        pt = sp.csr_matrix(pos.T)
        pt.sort_indices()
        perm = pt.data.astype(np.int64) - 1
        at = sp.csr_matrix((a.data[perm], pt.indices, pt.indptr), shape=pt.shape)
        return cls(_csr(a, dtype, device), _csr(at, dtype, device),
                   torch.from_numpy(perm).to(device or "cpu"))

    def with_values(self, values: torch.Tensor) -> "SparseOp":
        """The same sparsity pattern with new (constant) values in ``mat``'s order (e.g. after
        dropout on the non-zeros)."""
        m, t = self.mat, self._t
        return SparseOp(_csr_tensor(m.crow_indices(), m.col_indices(), values, m.shape),
                        _csr_tensor(t.crow_indices(), t.col_indices(), values[self._perm], t.shape),
                        self._perm)

    @classmethod
    def from_dense(cls, x: torch.Tensor) -> "SparseOp":
        """From a dense torch matrix (keeps its dtype and device)."""
        xs = sp.csr_matrix(x.detach().cpu().numpy())
        return cls.from_scipy(xs, x.dtype, x.device)

    @property
    def shape(self) -> Tuple[int, int]:
        return tuple(self.mat.shape)  # type: ignore[return-value]

    @property
    def T(self) -> "SparseOp":
        if self._transpose is None:
            inv = torch.empty_like(self._perm)
            inv[self._perm] = torch.arange(len(self._perm), device=self._perm.device)
            self._transpose = SparseOp(self._t, self.mat, inv, transpose_of=self)
        return self._transpose

    def __matmul__(self, h: torch.Tensor) -> torch.Tensor:
        return spmm(self, h)


def _csr(a: sp.csr_matrix, dtype: torch.dtype, device: Optional[torch.device]) -> torch.Tensor:
    # int32 indices: the CPU (MKL) kernel would otherwise convert int64 indices on every call
    itype = np.int32 if max(a.nnz, *a.shape) < 2 ** 31 - 1 else np.int64
    return _csr_tensor(torch.from_numpy(a.indptr.astype(itype)), torch.from_numpy(a.indices.astype(itype)),
                       torch.from_numpy(a.data).to(dtype), a.shape).to(device or "cpu")


def _csr_tensor(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, shape: Any) -> torch.Tensor:
    with warnings.catch_warnings():  # torch's "sparse CSR is beta" / invariant-check notices
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, val, shape)


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, op: SparseOp) -> torch.Tensor:  # type: ignore[override]
        ctx.op = op
        return op.mat @ h

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor):  # type: ignore[override]
        # d(A h)/dh^T g = A^T g, written with the differentiable op so double backward works
        return _SpMM.apply(g.contiguous(), ctx.op.T), None


def spmm(op: SparseOp, h: torch.Tensor) -> torch.Tensor:
    """``op.mat @ h`` (dense ``h``); gradient w.r.t. ``h`` only (``op`` is constant)."""
    return _SpMM.apply(h, op)


# -- caches: one operator per live feature tensor / graph (weakly referenced) ---------------------
_FEATURES: Dict[int, Tuple[Any, SparseOp]] = {}
_GRAPHS: Dict[int, Tuple[Any, int, SparseOp]] = {}


def _remember(cache: Dict[int, Any], obj: Any, entry: Tuple) -> None:
    key = id(obj)
    cache[key] = entry
    try:
        weakref.finalize(obj, cache.pop, key, None)
    except TypeError:  # not weak-referenceable: keep only while the id matches
        pass


def feature_op(x: torch.Tensor) -> SparseOp:
    """The cached :class:`SparseOp` of a sparse-CSR (or dense) feature matrix ``x``."""
    hit = _FEATURES.get(id(x))
    if hit is not None and hit[0]() is x:
        return hit[1]
    if x.layout == torch.sparse_csr:
        crow, col, val = (t.cpu().numpy() for t in (x.crow_indices(), x.col_indices(), x.values()))
        a = sp.csr_matrix((val, col, crow), shape=tuple(x.shape))
        op = SparseOp.from_scipy(a, x.dtype, x.device)
    else:
        op = SparseOp.from_dense(x)
    _remember(_FEATURES, x, (weakref.ref(x), op))
    return op


def gcn_norm_op(g: Any) -> SparseOp:
    """``D_in^-1/2 A D_out^-1/2`` of a DGL graph as DGL's ``GraphConv(norm='both')`` applies it
    (rows = destinations, degrees clamped to >= 1), computed once per graph object."""
    hit = _GRAPHS.get(id(g))
    if hit is not None and hit[0]() is g and hit[1] == g.num_edges():
        return hit[2]
    src, dst = (t.cpu().numpy() for t in g.edges())
    n = g.num_nodes()
    dout = np.maximum(np.bincount(src, minlength=n), 1).astype(np.float64) ** -0.5
    din = np.maximum(np.bincount(dst, minlength=n), 1).astype(np.float64) ** -0.5
    a = sp.csr_matrix((din[dst] * dout[src], (dst, src)), shape=(n, n))  # duplicates summed
    op = SparseOp.from_scipy(a, torch.float32, g.device)
    _remember(_GRAPHS, g, (weakref.ref(g), g.num_edges(), op))
    return op
