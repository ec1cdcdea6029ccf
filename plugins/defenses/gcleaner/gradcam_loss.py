"""Multi-layer, per-graph, differentiable Grad-CAM heat maps (paper Eqs. 10-13).

For conv layer ``l`` with node activations ``F^l`` (N x H) and class ``c`` (the graph's label):
``alpha^l = mean over the graph's nodes of d y^c / d F^l`` (one H-vector per graph) and
``heat^l[n] = ReLU(sum_k alpha^l_k F^l_{k,n})``. The gradient is taken with
``torch.autograd.grad(create_graph=True)``, so the heat-map loss trains the model through both
the activations and ``alpha`` (``grad="detach-alpha"`` keeps ``alpha`` constant, the spec's
variant; ``grad="none"`` detaches the whole map, as the authors' released code effectively does).

Graphs in a batch must be independent for per-graph maps to be exact: call this with the model
in eval mode (BatchNorm on running statistics), as GCleaner's unlearning does by default.
"""
from __future__ import annotations

from typing import List, Sequence

import torch

from dglcleaner._dgl import dgl

GRAD_MODES = ("full", "detach-alpha", "none")


def gradcam_maps(logits: torch.Tensor, layers: Sequence[torch.Tensor], bg: "dgl.DGLGraph",
                 classes: torch.Tensor, grad: str = "full", normalize: str = "none"
                 ) -> List[torch.Tensor]:
    """One ``(num_nodes,)`` heat map per layer in ``layers`` for the batched graph ``bg``."""
    score = logits.gather(1, classes.view(-1, 1).long()).sum()
    create = grad == "full"
    grads = torch.autograd.grad(score, list(layers), create_graph=create, retain_graph=True)
    bnn = bg.batch_num_nodes()
    maps = []
    for act, g in zip(layers, grads):
        alpha = dgl.ops.segment_reduce(bnn, g, "mean")  # (B, H): Eq. 12, per graph
        if grad != "full":
            alpha = alpha.detach()
        heat = torch.relu((act * alpha.repeat_interleave(bnn, dim=0)).sum(1))  # Eq. 13
        if normalize == "minmax":
            lo = dgl.ops.segment_reduce(bnn, heat.unsqueeze(1), "min").repeat_interleave(bnn, 0)
            hi = dgl.ops.segment_reduce(bnn, heat.unsqueeze(1), "max").repeat_interleave(bnn, 0)
            heat = (heat - lo.squeeze(1)) / (hi - lo).squeeze(1).clamp_min(1e-12)
        if grad == "none":
            heat = heat.detach()
        maps.append(heat)
    return maps


def per_graph_l2(a: torch.Tensor, b: torch.Tensor, bnn: torch.Tensor) -> torch.Tensor:
    """``||a_i - b_i||_2`` for each graph ``i`` of node vectors ``a``, ``b`` (N,) -> (B,)."""
    sq = dgl.ops.segment_reduce(bnn, ((a - b) ** 2).unsqueeze(1), "sum").squeeze(1)
    return torch.sqrt(sq + 1e-12)  # eps: finite gradient where the maps agree
