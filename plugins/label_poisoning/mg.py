"""MG: gradient-max label flipping (lgl6633/MG-attack), as used by Lingam et al. (spec 5.7).

Threat model: features, graph, labeled set, all labels.
Objective ``f(y) = -1/2 || SM y_L - S_K y0 ||^2`` over the unlabeled nodes, with the harmonic
operator ``SM = (D_uu - S_uu)^-1 S_ul`` of an RBF feature graph and ``S_K`` a 10-step propagation
of the clean one-hot labels; the nodes whose label gradient is largest are flipped.
Parameters: ``gamma`` 0.1, ``power`` 10, ``faithful`` (False). ``faithful=True`` (preset
``official``) keeps the reference's bugs (spec A8): labeled/unlabeled taken as the index blocks
``[:n_L]``/``[n_L:]``, ``S_K`` an element-wise power of the normalised adjacency, every flip to
class C-1 (nodes already in C-1 are not changed), two passes. The default uses the true
labeled/unlabeled sets, the matrix power, and per node the false class with the largest
first-order gain (exactly B flips).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dglcleaner.params import Param

from ._common import (LabelAttack, adjacency, apply, harmonic_operator, normalized, rbf_similarity,
                      to_torch, unlabeled)


class MG(LabelAttack):
    """Gradient-max label flipping through a label-propagation objective."""

    name = "mg"
    summary = "MG (gradient max): flip the labels with the largest label-propagation gradient."
    paper = "lgl6633/MG-attack (gradient-max label flipping); baseline in Lingam et al., ICLR 2024"
    params = (
        Param("gamma", float, 0.1, low=0.0, low_open=True, help="RBF width of the similarity graph"),
        Param("power", int, 10, low=1, high=50, help="propagation steps of S_K"),
        Param("faithful", bool, False, help="reproduce the reference's bugs (spec A8)"),
    )
    presets = {"official": {"faithful": True}}

    def poison(self, ctx):
        y = ctx.labels
        n, c = y.shape[0], ctx.num_classes
        L = ctx.labeled_idx.to(y.device)
        s = rbf_similarity(ctx.features, self.gamma)
        y0 = F.one_hot(y, c).double()
        a_hat = normalized(adjacency(ctx))
        if self.faithful:
            l_blk, u_blk = torch.arange(len(L)), torch.arange(len(L), n)
            sk = to_torch(a_hat.power(self.power), y.device)  # element-wise (bug kept)
        else:
            l_blk, u_blk = L, unlabeled(ctx)
            sk = to_torch(a_hat, y.device)
        target = torch.sparse.mm(sk, y0) if self.faithful else y0
        if not self.faithful:
            for _ in range(self.power):
                target = torch.sparse.mm(sk, target)
        sm = harmonic_operator(s, u_blk, l_blk)
        target = target[u_blk]

        def grad_at(labels: torch.Tensor) -> torch.Tensor:
            yl = torch.zeros(n, c, dtype=torch.float64)
            yl[L] = F.one_hot(labels[L], c).double()
            yl.requires_grad_(True)
            f = -0.5 * ((sm @ yl[l_blk] - target) ** 2).sum()
            (g,) = torch.autograd.grad(f, yl)
            return g

        if self.faithful:
            poisoned = y.clone()
            for _ in range(2):
                g = grad_at(poisoned)
                score = g[L, y[L]]
                pick = L[torch.argsort(-score, stable=True)[: ctx.budget]]
                poisoned = apply(ctx, pick, torch.full_like(pick, c - 1))
            return poisoned
        g = grad_at(y)
        gain = g[L, y[L]][:, None] - g[L]
        gain[torch.arange(len(L)), y[L]] = -float("inf")
        best_gain, best_cls = gain.max(1)
        order = torch.argsort(-best_gain, stable=True)[: ctx.budget]
        return apply(ctx, L[order], best_cls[order])
