"""DEG and DEG-BIN: flip the highest-degree labeled nodes (baselines, spec 5.3-5.4).

Threat model: knows the graph and the labeled set. Deviation: ties in degree are broken by node
id (stable sort); the reference uses numpy's unstable argsort (spec A11).
"""
from __future__ import annotations

import numpy as np
import torch

from ._common import LabelAttack, adjacency, apply, binary_candidates, random_other


def _by_degree(ctx, nodes: torch.Tensor) -> torch.Tensor:
    deg = np.asarray(adjacency(ctx).sum(1)).ravel()
    d = torch.from_numpy(deg)[nodes.cpu()]
    return torch.argsort(-d, stable=True)


class DEG(LabelAttack):
    """Top-``budget`` degree labeled nodes get a random other class."""

    name = "deg"
    summary = "Degree flips: the B highest-degree labeled nodes get a random other class."

    def poison(self, ctx):
        gen = torch.Generator().manual_seed(ctx.seed)
        L = ctx.labeled_idx.cpu()
        pick = L[_by_degree(ctx, L)[: ctx.budget]]
        return apply(ctx, pick, random_other(ctx.labels[pick.to(ctx.labels.device)], ctx.num_classes, gen))


class DEGBin(LabelAttack):
    """Top-``budget`` degree nodes of the two most frequent classes: swap a<->b."""

    name = "deg-bin"
    summary = "Degree binary flips between the two most frequent classes."

    def poison(self, ctx):
        cand, target = binary_candidates(ctx)
        sel = _by_degree(ctx, cand)[: ctx.budget].to(cand.device)
        return apply(ctx, cand[sel], target[sel])
