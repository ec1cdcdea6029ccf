"""NTK and NTK-BIN: linear-surrogate label poisoning with the GCN neural tangent kernel (spec 6.2).

Paper: Lingam et al., ICLR 2024 (linear surrogate attacks, variant 2; ``SGC_attack_ntk.ipynb``).
Threat model: as SGC (white box, clean labels of all nodes).
Surrogate: kernel regression ``f_U = K_UL K_LL^+ Y_L`` with the depth-2 ReLU GCN-NTK computed
densely in float64 (N x N; about 63 MB per matrix on cora_ml). Selection: exact top-B as SGC.
Parameters: ``depth`` (2, [1, 4]), ``rcond`` (1e-8, pinv cut-off), ``self_loops`` (False).
"""
from __future__ import annotations

import math

import torch

from dglcleaner.params import Param

from ._common import (LabelAttack, adjacency, lsa_flip, lsa_scores, memoized, normalized,
                      to_torch, unlabeled)

PARAMS = (
    Param("depth", int, 2, low=1, high=4, help="number of GCN layers of the NTK"),
    Param("rcond", float, 1e-8, low=0.0, low_open=True, help="pseudo-inverse cut-off"),
    Param("self_loops", bool, False, help="add self-loops before normalising A"),
)


def gcn_ntk(a: torch.Tensor, x: torch.Tensor, depth: int = 2) -> torch.Tensor:
    """GCN-NTK (ReLU, c_sigma=1) of the reference notebook; ``a`` sparse normalised adjacency."""
    def prop(m):  # a @ m @ a^T with a symmetric and sparse
        return torch.sparse.mm(a, torch.sparse.mm(a, m).T).T

    # X X^T through a sparse X when features are sparse bag-of-words (~50x fewer flops on cora_ml)
    xs = x.to_sparse() if float((x != 0).double().mean()) < 0.1 else x
    sigma = prop(torch.sparse.mm(xs, x.T) if xs.is_sparse else x @ x.T)
    aat = torch.sparse.mm(a, a.to_dense().T)
    ts = []
    for _ in range(depth):
        dg = torch.sqrt(torch.clamp(torch.diagonal(sigma), min=0))
        q = torch.outer(dg, dg)
        u = torch.where(q > 0, sigma / torch.where(q > 0, q, torch.ones_like(q)), torch.ones_like(q)).clamp(-1, 1)
        acos = torch.arccos(u)
        e = q * (u * (math.pi - acos) + torch.sqrt(torch.clamp(1 - u * u, min=0))) / math.pi
        edot = (math.pi - acos) / math.pi
        kd = aat * edot
        ts = [t * kd for t in ts]
        ts.append(sigma * kd)
        sigma = prop(e)
    return sum(ts) + sigma


def ntk_operator(ctx, depth: int, rcond: float, self_loops: bool) -> torch.Tensor:
    # the kernel depends on neither the split nor the budget: one per graph and features
    def kernel() -> torch.Tensor:
        a = to_torch(normalized(adjacency(ctx), self_loops), ctx.labels.device)
        return gcn_ntk(a, ctx.features.to(torch.float64), depth)

    k = memoized("gcn-ntk", (ctx.graph, ctx.features), (depth, self_loops, ctx.graph.num_edges()),
                 kernel)
    L, U = ctx.labeled_idx, unlabeled(ctx)
    return k[U][:, L] @ torch.linalg.pinv(k[L][:, L], rtol=rcond, hermitian=True)


class NTK(LabelAttack):
    """Multi-class NTK linear-surrogate attack."""

    name = "ntk"
    summary = "Linear-surrogate attack, GCN-NTK kernel regression, multi-class flips (exact top-B)."
    params = PARAMS

    def poison(self, ctx):
        m = ntk_operator(ctx, self.depth, self.rcond, self.self_loops)
        return lsa_flip(ctx, lsa_scores(ctx, m), binary=False)


class NTKBin(NTK):
    """Binary NTK linear-surrogate attack (a<->b swaps)."""

    name = "ntk-bin"
    summary = "Linear-surrogate attack, GCN-NTK kernel regression, binary a<->b flips (exact top-B)."

    def poison(self, ctx):
        m = ntk_operator(ctx, self.depth, self.rcond, self.self_loops)
        return lsa_flip(ctx, lsa_scores(ctx, m), binary=True)
