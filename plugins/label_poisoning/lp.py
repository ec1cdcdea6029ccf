"""LP: label-propagation attack (Liu et al., NeurIPS 2019), as adapted by Lingam et al. (spec 5.5).

Paper: X. Liu, S. Si, X. Zhu, Y. Li, C.-J. Hsieh. A Unified Framework for Data Poisoning Attack
to Graph-based Semi-supervised Learning. NeurIPS 2019 (AdvSSL ``probablistic_method_soft``).
Threat model: features (the graph is NOT used: an RBF similarity graph), labeled set, all labels.
Algorithm: harmonic-function predictor ``K = (D_uu - S_uu)^-1 S_ul`` on the pair (a, b) of the
two most frequent classes; relaxed Bernoulli flip variables ``alpha`` (no Gumbel noise, as the
adaptation); maximise ``||tanh(T K (y_l * z)) - y_u||^2`` with an L2 penalty; flip by decreasing
alpha; if budget remains, repeat with the next class pair.
Parameters: ``gamma`` 0.1, ``tau`` 0.2, ``scale`` (T) 10, ``lam`` 0.01, ``steps``, ``lr``,
``faithful`` (False). ``faithful=True`` (preset ``official``) keeps the reference's quirks
(spec A7): raw class ids as labels, all test nodes in the loss, plain GD with lr 1e-6 for 1500
steps, flips only where alpha > 0.5 (so fewer than B flips can happen). The default fixes them:
+-1 labels on the pair's nodes, Adam (lr 0.05, 200 steps) and exactly B flips (top alpha).
"""
from __future__ import annotations

import torch

from dglcleaner.params import Param

from ._common import (LabelAttack, binary_candidates, harmonic_operator, rbf_similarity,
                      top2_classes, unlabeled)


class LP(LabelAttack):
    """Label-propagation (harmonic function) surrogate attack on binary class pairs."""

    name = "lp"
    summary = "Label-propagation surrogate attack (Liu et al. 2019) on the top class pairs."
    paper = ("Liu et al. A Unified Framework for Data Poisoning Attack to Graph-based "
             "Semi-supervised Learning. NeurIPS 2019; as adapted by Lingam et al., ICLR 2024")
    params = (
        Param("gamma", float, 0.1, low=0.0, low_open=True, help="RBF width of the similarity graph"),
        Param("tau", float, 0.2, low=0.0, low_open=True, help="temperature of the relaxed flips"),
        Param("scale", float, 10.0, low=0.0, low_open=True, help="T in tanh(T K v)"),
        Param("lam", float, 0.01, low=0.0, help="L2 penalty on alpha"),
        Param("steps", int, 200, low=1, high=100000, help="optimisation steps"),
        Param("lr", float, 0.05, low=0.0, low_open=True, help="step size"),
        Param("faithful", bool, False, help="reproduce the reference's quirks (spec A7)"),
    )
    presets = {"official": {"faithful": True, "steps": 1500, "lr": 1e-6}}

    def poison(self, ctx):
        y = ctx.labels.clone()
        s = rbf_similarity(ctx.features, self.gamma)
        U = unlabeled(ctx)
        remaining = ctx.budget
        n_pairs = max(1, ctx.num_classes // 2)
        for order in range(n_pairs):
            if remaining <= 0:
                break
            if ctx.num_classes < 2 * (order + 1):
                break
            a, b = top2_classes(ctx.labels, ctx.num_classes, order)
            cand, target = binary_candidates(ctx, order)
            if len(cand) == 0:
                continue
            if self.faithful:
                u = U
                yl, yu = ctx.labels[cand].double(), ctx.labels[u].double()
            else:
                u = U[(ctx.labels[U] == a) | (ctx.labels[U] == b)]
                yl = torch.where(ctx.labels[cand] == a, 1.0, -1.0).double()
                yu = torch.where(ctx.labels[u] == a, 1.0, -1.0).double()
            k = harmonic_operator(s, u, cand)
            alpha = torch.full((len(cand),), 0.5, dtype=torch.float64, requires_grad=True)
            opt = (torch.optim.SGD([alpha], lr=self.lr) if self.faithful
                   else torch.optim.Adam([alpha], lr=self.lr))
            for _ in range(self.steps):
                opt.zero_grad()
                z = 2.0 / (1.0 + torch.exp(torch.logit(alpha) / self.tau)) - 1.0
                pred = torch.tanh(self.scale * (k @ (yl * z)))
                loss = -0.5 * ((pred - yu) ** 2).sum() + 0.5 * self.lam * (alpha ** 2).sum()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    alpha.clamp_(1e-3, 1 - 1e-3)
            al = alpha.detach()
            order_idx = torch.argsort(-al, stable=True)
            if self.faithful:
                order_idx = order_idx[al[order_idx] > 0.5]
            pick = order_idx[:remaining]
            y[cand[pick]] = target[pick]
            remaining -= len(pick)
        return y
