"""Integrated Gradients node importance.

Paper: Sundararajan, Taly, Yan, "Axiomatic Attribution for Deep Networks", ICML 2017; one of the
heat-map sources of GCleaner's Table 6. Threat model: white box.

Attribution of input feature ``x[n, d]`` for the target logit ``F``:
``(x - x') * mean_{i=1..steps} dF/dx (x' + (i - 0.5)/steps * (x - x'))`` (midpoint Riemann sum)
with baseline ``x' = 0``; the graph structure is kept. The node score is the attribution summed
over the node's features: ``abs`` of that sum by default (magnitude of the node's contribution),
or only its positive part with ``signed=true`` (evidence *for* the target).

With one-hot degree features only a node's active feature differs from the zero baseline, so a
node's score is the attribution of its one feature.

As GCleaner's heat-map source (``heat_map``) the attributions are kept differentiable in the
model's parameters (second-order gradients), so the heat-map loss trains the model.

Parameters
----------
steps : int, default 50, in [1, 1000]
signed : bool, default False

Example
-------
>>> IntegratedGradients(steps=20).steps
20
"""
from __future__ import annotations

import torch

from dglcleaner._dgl import dgl
from dglcleaner.params import Param

from ._common import ExplainerBase


#: Most values (nodes x max(feature width, 64)) in one batched pass over interpolation steps:
#: about 64 MB per input-sized tensor (COLLAB's 496-wide one-hot features get fewer steps
#: per pass than AIDS's 11-wide ones).
MAX_VALUES_PER_PASS = 1 << 24


def integrated_gradients(model, graph, feat, target, steps: int,
                         create_graph: bool = False) -> torch.Tensor:
    """Per-feature IG attributions ``(num_nodes, dim)`` with a zero baseline;
    ``create_graph``: keep them differentiable in the model's parameters.

    A model in eval mode sees the interpolation steps as copies of ``graph`` in one batched
    forward/backward (graphs do not interact in eval mode, so this is the same sum; measured
    on GCleaner's IG heat map it removes most of the per-step autograd overhead). A model in
    train mode gets one pass per step, since BatchNorm's batch statistics would mix the copies.
    """
    n = feat.shape[0]
    size = max(n * max(feat.shape[1], 64), 1)
    per_pass = 1 if model.training else max(1, min(steps, MAX_VALUES_PER_PASS // size))
    total = torch.zeros_like(feat)
    for start in range(0, steps, per_pass):
        c = min(per_pass, steps - start)
        alphas = torch.tensor([(i + 0.5) / steps for i in range(start, start + c)],
                              dtype=feat.dtype, device=feat.device)
        x = (feat.unsqueeze(0) * alphas.view(c, 1, 1)).reshape(c * n, -1).requires_grad_(True)
        g = graph if c == 1 else dgl.batch([graph] * c)
        rows = torch.arange(c * graph.batch_size, device=feat.device)
        score = model(g, x)[rows, target.repeat(c)].sum()  # one backward serves every graph
        grad = torch.autograd.grad(score, x, create_graph=create_graph)[0]
        total = total + grad.view(c, n, -1).sum(dim=0)
    return feat * total / steps


class IntegratedGradients(ExplainerBase):
    """IG attributions (zero baseline) summed per node."""

    name = "ig"
    summary = "Integrated Gradients (zero baseline), attributions summed per node."
    paper = ("Sundararajan, Taly, Yan. Axiomatic Attribution for Deep Networks. ICML 2017. "
             "https://arxiv.org/abs/1703.01365")
    params = (
        Param("steps", int, 50, "Riemann steps along the path", low=1, high=1000),
        Param("signed", bool, False, "keep only positive evidence instead of the magnitude"),
    )

    differentiable = True

    def _explain(self, model, graph, feat, target):
        with torch.enable_grad():
            return self._scores(integrated_gradients(model, graph, feat, target, self.steps))

    def _heat(self, model, graph, feat, target):
        return self._scores(integrated_gradients(model, graph, feat, target, self.steps,
                                                 create_graph=True))

    def _scores(self, attr: torch.Tensor) -> torch.Tensor:
        attr = attr.sum(dim=1)
        return attr.clamp(min=0) if self.signed else attr.abs()
