"""SGC and SGC-BIN: linear-surrogate label poisoning with an SGC ridge surrogate (spec 6.2).

Paper: Lingam et al., ICLR 2024 (section "Linear surrogate attacks", variant 1).
Threat model: white box on graph, features, labeled set and the clean labels of all nodes
(test labels included, as in the reference; they enter only through the objective).
Surrogate: ``X_hat = A_hat^hops X``, ridge ``W = (X_L^T X_L + lam I)^-1 X_L^T Y_L``; the attacker
minimises the summed true-class score of the unlabeled nodes. That objective is linear in the
flip indicators with one cardinality constraint, so the MILP the authors solve with MOSEK is
solved exactly by sorting (no solver needed).
Parameters: ``lam`` (1.0, > 0; the notebooks' value), ``hops`` (2, [1, 10]), ``self_loops``
(False: the notebooks' ``normalize_adj`` adds none).
Deviations: U = all unlabeled nodes (the reference: the split's test ids).
"""
from __future__ import annotations

import torch

from dglcleaner.params import Param

from ._common import LabelAttack, adjacency, lsa_flip, normalized, to_torch, unlabeled

PARAMS = (
    Param("lam", float, 1.0, low=0.0, low_open=True, help="ridge regularisation of the surrogate"),
    Param("hops", int, 2, low=1, high=10, help="propagation steps of A_hat in X_hat = A_hat^hops X"),
    Param("self_loops", bool, False, help="add self-loops before normalising A"),
)


def _propagated(ctx, lam: float, hops: int, self_loops: bool):
    a = to_torch(normalized(adjacency(ctx), self_loops), ctx.labels.device)
    x = ctx.features.to(torch.float64)
    for _ in range(hops):
        x = torch.sparse.mm(a, x)
    xl, xu = x[ctx.labeled_idx], x[unlabeled(ctx)]
    gram = xl @ xl.T + lam * torch.eye(len(xl), dtype=x.dtype, device=x.device)
    return xl, xu, gram


def sgc_operator(ctx, lam: float, hops: int, self_loops: bool) -> torch.Tensor:
    """``M = X_U (X_L^T X_L + lam I)^-1 X_L^T`` (|U| x |L|, float64), push-through form."""
    xl, xu, gram = _propagated(ctx, lam, hops, self_loops)
    # X_U X_L^T (X_L X_L^T + lam I)^-1 == X_U (X_L^T X_L + lam I)^-1 X_L^T  (n_L << d)
    return torch.linalg.solve(gram, xl @ xu.T).T


def sgc_scores(ctx, lam: float, hops: int, self_loops: bool) -> torch.Tensor:
    """``S = M^T Y_U`` without forming M or the dense ``A_hat^hops X``:
    ``S = (X_L X_L^T + lam I)^-1 X_L (X_U^T Y_U)`` with ``X_L = (A^h)[L] X`` and
    ``X_U^T Y_U = X^T ((A^h)[U]^T Y_U)``, all in scipy sparse algebra (milliseconds on cora_ml)."""
    import numpy as np
    import scipy.sparse as sp

    a = normalized(adjacency(ctx), self_loops)
    p = a
    for _ in range(hops - 1):
        p = (p @ a).tocsr()
    f = ctx.features.detach().cpu()
    f = f if f.layout == torch.sparse_csr else f.to_sparse_csr()  # cheaper than scipy's dense scan
    x = sp.csr_matrix((f.values().double().numpy(), f.col_indices().numpy(), f.crow_indices().numpy()),
                      shape=tuple(f.shape))
    L = ctx.labeled_idx.cpu().numpy()
    U = unlabeled(ctx).cpu().numpy()
    xl = np.asarray((p[L] @ x).todense())
    yu = np.eye(ctx.num_classes)[ctx.labels[unlabeled(ctx)].cpu().numpy()]
    xu_t_yu = np.asarray(x.T @ (p[U].T @ yu))
    gram = xl @ xl.T + lam * np.eye(len(L))
    out = np.linalg.solve(gram, xl @ xu_t_yu)
    return torch.from_numpy(out).to(ctx.labels.device)


class SGC(LabelAttack):
    """Multi-class SGC linear-surrogate attack (best false class per node, top-B nodes)."""

    name = "sgc"
    summary = "Linear-surrogate attack, SGC ridge surrogate, multi-class flips (exact top-B)."
    params = PARAMS

    def poison(self, ctx):
        return lsa_flip(ctx, sgc_scores(ctx, self.lam, self.hops, self.self_loops), binary=False)


class SGCBin(SGC):
    """Binary SGC linear-surrogate attack: a<->b swaps of the two most frequent classes."""

    name = "sgc-bin"
    summary = "Linear-surrogate attack, SGC ridge surrogate, binary a<->b flips (exact top-B)."

    def poison(self, ctx):
        return lsa_flip(ctx, sgc_scores(ctx, self.lam, self.hops, self.self_loops), binary=True)
