"""Meta: meta-gradient label poisoning of Lingam et al. (ICLR 2024, spec 6.1).

Paper: Lingam, Akhondzadeh, Bojchevski. Rethinking Label Poisoning for GNNs: Pitfalls and
Attacks. ICLR 2024 (meta attack: ``attack.py::meta_attack_labels`` of the official code).
Threat model: white box (graph, features, labeled set, clean labels of all nodes; test labels
enter the GS loss and the early stopping, as in the reference, spec A4).

Algorithm (the README's default path, flat candidates): one score ``w`` per (labeled node, false
class) pair; per outer step ``mu = SoftTopK(w, B)`` (marginals of the k-subset distribution) and
the hard k-subset selection ``hard`` (below), straight-through ``b = hard - mu.detach() + mu``;
poisoned soft labels ``Y_L = (1 - sum_c b) * Y_L + H``; a 2-layer GCN surrogate from a fixed
random init is trained ``inner_steps`` differentiable Adam steps (lr ``inner_lr``, weight decay
5e-4, dropout 0.5) on them; the attacker minimises the Gumbel-softmax 0-1 loss (``tau``, hard)
on the unlabeled nodes by Adam (lr ``lr``, weight decay 1e-5) on ``w``; the selection with the
lowest surrogate test accuracy seen is kept (patience ``patience``).

Hard selection (spends the budget exactly): the paper takes the top-B scores of ``w``; it is
silent on a node that gets two of them (its ``Y_L`` formula then is not a label). Here each
node keeps its best-scored false class and the freed slots go to the next-best scores of the
other nodes, i.e. the B nodes with the largest per-node maximum score, each flipped to its
argmax class. The surrogate is trained on exactly these labels, and the attack returns exactly
``min(B, |L|)`` flipped labeled nodes, each to a class different from its true label.

Parameters: ``outer_steps`` 100 (1..10000), ``inner_steps`` 15 (1..200), ``lr`` 0.1 (> 0),
``inner_lr`` 0.01 (> 0), ``hidden`` 64 (1..4096), ``patience`` 20 (1..10000), ``tau`` 100 (> 0).

Deviations: candidates exclude the node's own class (the reference includes it, wasting budget,
spec A2); the duplicate-free selection above; SoftTopK marginals are exact (log-space
polynomial product, autograd) instead of the reference's finite-difference backward (spec
A16); the surrogate is always a GCN written in plain torch (the reference uses the victim's
architecture); unrolled Adam is hand-written (the reference uses ``higher``). For speed the
surrogate's training forward computes only the rows the loss on ``L`` depends on (the 1-hop
neighbourhood of ``L`` in the hidden layer), which changes nothing but the number of dropout
draws; dropout and Gumbel noise come from a generator seeded by ``ctx.seed`` (the global torch
RNG is left alone).
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from dglcleaner.node.sparse import SparseOp, feature_op, spmm
from dglcleaner.params import Param

from ._common import LabelAttack, adjacency, apply, normalized, unlabeled

NEG = -1e30


def log_esp(w: torch.Tensor, k: int) -> torch.Tensor:
    """``log e_k(exp(w))`` (elementary symmetric polynomial) by a balanced tree of log-space
    polynomial products truncated at degree k (degree bound doubles per level: O(n k) work for
    the first levels, O(log n) vectorised steps)."""
    if k == 0:
        return torch.zeros((), dtype=w.dtype, device=w.device)
    polys = torch.stack([torch.zeros_like(w), w], 1)  # (n, 2): 1 + exp(w_i) z
    deg = 1
    while polys.shape[0] > 1:
        if polys.shape[0] % 2:
            one = torch.full((1, deg + 1), NEG, dtype=w.dtype, device=w.device)
            one[0, 0] = 0.0
            polys = torch.cat([polys, one])
        a, b = polys[0::2], polys[1::2]
        new = min(2 * deg, k)
        j = torch.arange(new + 1, device=w.device)
        t = torch.arange(deg + 1, device=w.device)
        diff = j[:, None] - t[None, :]  # (new+1, deg+1): index j - t into b
        valid = (diff >= 0) & (diff <= deg)
        bg = b[:, diff.clamp(0, deg)]  # (m, new+1, deg+1)
        terms = torch.where(valid, a[:, None, :] + bg, torch.full_like(bg, NEG))
        polys = torch.logsumexp(terms, dim=2)
        deg = new
    return polys[0, k]


def soft_topk(w: torch.Tensor, k: int) -> torch.Tensor:
    """Marginals ``P(i in S)`` of ``p(S) ~ exp(sum_{i in S} w_i)``, |S| = k (differentiable)."""
    if not w.requires_grad:
        w = w.detach().requires_grad_(True)
    (mu,) = torch.autograd.grad(log_esp(w, k), w, create_graph=True)
    return mu


def select_distinct(scores: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` selection with at most one class per node: ``scores`` is (n_nodes, n_classes);
    returns (node rows, column) of the ``k`` nodes with the largest row maximum, each with its
    argmax column (ties: lower index). Equals taking the top-k entries and refilling the slots
    of a node's second choice with the next-best entries of the other nodes."""
    best, arg = scores.max(1)
    rows = torch.argsort(-best, stable=True)[:k]
    return rows, arg[rows]


class Meta(LabelAttack):
    """Meta-gradient label flipping with soft top-k selection and the GS 0-1 loss."""

    name = "meta"
    summary = "Meta-gradient label poisoning (soft top-k + Gumbel-softmax 0-1 loss), Lingam et al."
    params = (
        Param("outer_steps", int, 100, low=1, high=10000, help="meta (outer) iterations"),
        Param("inner_steps", int, 15, low=1, high=200, help="unrolled surrogate training steps"),
        Param("lr", float, 0.1, low=0.0, low_open=True, help="outer Adam learning rate"),
        Param("inner_lr", float, 0.01, low=0.0, low_open=True, help="inner Adam learning rate"),
        Param("hidden", int, 64, low=1, high=4096, help="surrogate GCN hidden size"),
        Param("patience", int, 20, low=1, high=10000, help="outer steps without improvement"),
        Param("tau", float, 100.0, low=0.0, low_open=True, help="GS-loss temperature"),
    )

    def poison(self, ctx):
        dev = ctx.labels.device
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        noise = torch.Generator(device=dev).manual_seed(ctx.seed)  # dropout + Gumbel draws
        y, c = ctx.labels, ctx.num_classes
        L, U = ctx.labeled_idx.to(dev), unlabeled(ctx)
        n_l = len(L)
        k = min(ctx.budget, n_l)
        if k == 0 or c < 2:
            self._info = {"surrogate_acc": None, "outer_steps_run": 0}
            return y.clone()
        # normalised adjacency, built once: full (eval on U) and the rows the loss on L needs
        a = normalized(adjacency(ctx), self_loops=True)
        l_np = L.cpu().numpy()
        a_l = a[l_np]
        n1 = np.unique(a_l.indices)  # 1-hop neighbourhood of L (self-loops: includes L)
        a_full = SparseOp.from_scipy(a, torch.float32, dev)
        a_n1 = SparseOp.from_scipy(a[n1], torch.float32, dev)
        a_ln1 = SparseOp.from_scipy(a_l[:, n1], torch.float32, dev)
        x = ctx.features.float()
        if x.layout != torch.strided:
            xop = feature_op(x)
        elif float((x != 0).float().mean()) < 0.1:
            xop = SparseOp.from_dense(x)
        else:
            xop = None
        yl = F.one_hot(y[L], c).float()
        # candidate (node, class) pairs, node-major: the c-1 false classes of every labeled node
        cls = torch.arange(c, device=dev).repeat(n_l)
        node = torch.arange(n_l, device=dev).repeat_interleave(c)
        keep = cls != y[L][node]
        cls, node = cls[keep], node[keep]
        w = torch.rand(len(cls), generator=gen, dtype=torch.float64).to(dev).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.lr, weight_decay=1e-5)
        d = x.shape[1]
        w1 = torch.empty(d, self.hidden)
        w2 = torch.empty(self.hidden, c)
        torch.nn.init.xavier_uniform_(w1, generator=gen)
        torch.nn.init.xavier_uniform_(w2, generator=gen)
        init = [w1.to(dev), torch.zeros(self.hidden, device=dev), w2.to(dev), torch.zeros(c, device=dev)]
        y_u = F.one_hot(y[U], c).float()
        keep_p = 0.5  # surrogate dropout 0.5

        def project(p):
            return spmm(xop, p[0]) if xop is not None else x @ p[0]

        def forward_l(p):  # training forward, logits of L only, dropout on
            h = torch.relu(spmm(a_n1, project(p)) + p[1])
            mask = torch.rand(h.shape, generator=noise, device=dev) < keep_p
            h = h * mask / keep_p
            return spmm(a_ln1, h @ p[2]) + p[3]

        def forward_eval(p):
            h = torch.relu(spmm(a_full, project(p)) + p[1])
            return spmm(a_full, h @ p[2]) + p[3]

        def inner(target):
            p = [t.clone().requires_grad_(True) for t in init]
            m = [torch.zeros_like(t) for t in p]
            v = [torch.zeros_like(t) for t in p]
            b1, b2, eps = 0.9, 0.999, 1e-8
            for step in range(1, self.inner_steps + 1):
                loss = -(target * F.log_softmax(forward_l(p), 1)).sum(1).mean()
                # create_graph: the meta-gradient flows through every update to the labels
                grads = torch.autograd.grad(loss, p, create_graph=True)
                c1, c2 = 1 - b1 ** step, 1 - b2 ** step
                new = []
                for i, (t, g) in enumerate(zip(p, grads)):
                    g = g + 5e-4 * t
                    m[i] = b1 * m[i] + (1 - b1) * g
                    v[i] = b2 * v[i] + (1 - b2) * g * g
                    new.append(t - self.inner_lr * (m[i] / c1) / (torch.sqrt(v[i] / c2 + 1e-16) + eps))
                p = new
            return p

        def labels_from(bsel):
            h = torch.zeros(n_l, c, dtype=torch.float32, device=dev)
            h = h.index_put((node, cls), bsel.float(), accumulate=True)
            return (1 - h.sum(1, keepdim=True)) * yl + h

        best_acc, best, wait, steps_run = math.inf, None, 0, 0
        for _ in range(self.outer_steps):
            steps_run += 1
            opt.zero_grad()
            mu = soft_topk(w, k)
            rows, col = select_distinct(w.detach().view(n_l, c - 1), k)
            hard = torch.zeros_like(mu)
            hard[rows * (c - 1) + col] = 1.0
            bsel = hard - mu.detach() + mu
            logits = forward_eval(inner(labels_from(bsel)))[U]
            with torch.no_grad():
                acc = float((logits.argmax(1) == y[U]).float().mean())
            if acc < best_acc:
                best_acc, best, wait = acc, hard.clone(), 0
            else:
                wait += 1
                if wait >= self.patience:
                    break
            # GS 0-1 loss: hard Gumbel-softmax (straight-through), i.e. F.gumbel_softmax with
            # its noise drawn from our generator
            gumbel = -torch.empty_like(logits).exponential_(generator=noise).log()
            soft = F.softmax((logits + gumbel) / self.tau, 1)
            onehot = F.one_hot(soft.argmax(1), c).to(soft.dtype)
            gs = onehot - soft.detach() + soft
            loss = (gs * y_u).sum() / len(U)
            loss.backward()
            opt.step()
        chosen = torch.nonzero(best).flatten()
        self._info = {"surrogate_acc": best_acc, "outer_steps_run": steps_run}
        return apply(ctx, L[node[chosen]], cls[chosen])
