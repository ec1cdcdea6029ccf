"""RND and RND-BIN: random label flips (baselines of Lingam et al., ICLR 2024, spec 5.1-5.2).

Threat model: knows the labeled set; RND-BIN also knows the two globally most frequent classes.
Parameters: none. Seeded with ``ctx.seed`` (a torch generator, not the reference's global numpy
stream, so the chosen nodes differ from the reference's for the same seed).
"""
from __future__ import annotations

import torch

from ._common import LabelAttack, apply, binary_candidates, random_other


class RND(LabelAttack):
    """Flip ``budget`` random labeled nodes to a random other class."""

    name = "rnd"
    summary = "Random label flips: B random labeled nodes get a random other class."

    def poison(self, ctx):
        gen = torch.Generator().manual_seed(ctx.seed)
        L = ctx.labeled_idx.cpu()
        pick = L[torch.randperm(len(L), generator=gen)[: ctx.budget]]
        return apply(ctx, pick, random_other(ctx.labels[pick.to(ctx.labels.device)], ctx.num_classes, gen))


class RNDBin(LabelAttack):
    """Swap a<->b on ``budget`` random labeled nodes of the two most frequent classes."""

    name = "rnd-bin"
    summary = "Random binary flips between the two most frequent classes."

    def poison(self, ctx):
        gen = torch.Generator().manual_seed(ctx.seed)
        cand, target = binary_candidates(ctx)
        sel = torch.randperm(len(cand), generator=gen)[: ctx.budget].to(cand.device)
        return apply(ctx, cand[sel], target[sel])
